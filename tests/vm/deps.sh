#!/bin/sh
# Prints the Debian packages tests/vm/run-v2.sh needs, one line, for CI:
#   apt-get install -y $(tests/vm/deps.sh)
# perl (perl-base), gzip, coreutils and libc-bin (ldd) are Essential and always present.
echo "qemu-system-x86 linux-image-amd64 cpio busybox-static"
