//! `rename`: a container's name is a key of the name index (`container_names`) and a
//! field of its record; both change in one transaction, so a name is never held twice
//! or lost half-way.

use crate::container::{valid_name, Container, ContainerError, Engine, CONTAINERS, NAMES};

impl Engine {
    /// Renames the container `key` (id, id prefix or name) to `new`. A name in use is
    /// [`ContainerError::NameInUse`]; renaming to its own name is a no-op.
    pub fn rename(&self, key: &str, new: &str) -> Result<Container, ContainerError> {
        if !valid_name(new) {
            return Err(ContainerError::BadName(new.into()));
        }
        let c = self.find(key)?;
        let renamed = self.images.meta.write(|tx| {
            let Some(mut rec) = tx.get::<Container>(CONTAINERS, &c.id)? else {
                return Err(ContainerError::NotFound(key.into()));
            };
            if rec.name == new {
                return Ok(rec);
            }
            if let Some(other) = tx.get::<String>(NAMES, new)? {
                return Err(ContainerError::NameInUse(new.into(), other));
            }
            tx.remove(NAMES, &rec.name)?;
            tx.put(NAMES, new, &rec.id)?;
            rec.name = new.to_string();
            tx.put(CONTAINERS, &rec.id, &rec)?;
            Ok(rec)
        })?;
        if renamed.name != c.name {
            self.container_event("rename", &renamed, &[("oldName", c.name.clone())]);
        }
        Ok(renamed)
    }
}
