#!/usr/bin/env bash
# The Debian packages berth's build, tests and benchmarks need, one per line.
cat <<'EOF'
busybox-static
runc
crun
containerd
podman
catatonit
gcc
libc6-dev
libseccomp-dev
pkg-config
hyperfine
jq
curl
python3-grpcio
pigz
libdeflate-tools
time
iproute2
containernetworking-plugins
iptables
util-linux
bsdutils
e2fsprogs
procps
qemu-system-x86
linux-image-amd64
cpio
skopeo
umoci
docker-registry
apache2-utils
openssl
EOF
