//! The hardware table: model × accelerator → request rates known to span low load to saturation.
//!
//! Read from `catalog/hardware.pbtxt` (a file whose header says `# proto-message: HardwareTable`);
//! the binary carries a copy so it works anywhere (in a pod, from another folder).

use std::{path::Path, sync::Arc};

use crate::{
    self as schema, HardwareProfile,
    text::{Diagnostic, Diagnostics, SourceFile, locate::Positions, parse},
};

/// The copy of `catalog/hardware.pbtxt` built into the binary.
pub const BUILTIN: &str = include_str!("../../../catalog/hardware.pbtxt");

/// Parsed, checked hardware table.
#[derive(Debug, Clone, Default)]
pub struct HardwareTable {
    /// Where it was read from.
    pub source: String,
    profiles: Vec<HardwareProfile>,
}

impl HardwareTable {
    /// Reads a table file.
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let file = SourceFile::read(path)?;
        Self::parse(file)
    }

    /// The built-in table.
    pub fn builtin() -> Self {
        Self::parse(Arc::new(SourceFile::new("<built-in>/catalog/hardware.pbtxt".into(), BUILTIN.into())))
            .expect("the built-in hardware table is valid (checked by tests)")
    }

    /// `catalog_dir/hardware.pbtxt` when it exists, else the built-in table.
    pub fn for_catalog(catalog_dir: &Path) -> Result<Self, Diagnostics> {
        let p = catalog_dir.join("hardware.pbtxt");
        if p.is_file() { Self::load(&p) } else { Ok(Self::builtin()) }
    }

    fn parse(file: Arc<SourceFile>) -> Result<Self, Diagnostics> {
        let desc = schema::message("HardwareTable");
        let msg = parse::parse(&file, desc.clone())?;
        let table: schema::HardwareTable = msg.transcode_to().map_err(|e| Diagnostic::new(e.to_string()))?;
        let pos = Positions::index(&desc, &file.text);
        let mut diags = Diagnostics::default();
        for (i, p) in table.profiles.iter().enumerate() {
            let at = |rel: &str| {
                let path = format!("profiles[{i}]{rel}");
                (pos.nearest(&path).map(|o| file.location(o)), path)
            };
            let mut err = |rel: &str, msg: &str| {
                let (loc, path) = at(rel);
                diags.push(Diagnostic::new(msg).at(loc).path(path));
            };
            if p.model().is_empty() {
                err(".model", "required: the model id");
            }
            if p.accelerator().is_empty() {
                err(".accelerator", "required: the accelerator type");
            }
            if p.base_rates.is_empty() {
                err(".base_rates", "required: at least one rate");
            }
            for (j, r) in p.base_rates.iter().enumerate() {
                if !(r.is_finite() && *r > 0.0) {
                    err(&format!(".base_rates[{j}]"), &format!("rates must be > 0, got {r}"));
                }
            }
            if table.profiles[..i].iter().any(|q| q.model() == p.model() && q.accelerator() == p.accelerator()) {
                err("", &format!("duplicate profile {}@{}", p.model(), p.accelerator()));
            }
        }
        diags.into_result(Self { source: file.path.display().to_string(), profiles: table.profiles })
    }

    /// The profile of a model on an accelerator.
    pub fn find(&self, model: &str, accelerator: &str) -> Option<&HardwareProfile> {
        self.profiles.iter().find(|p| p.model() == model && p.accelerator() == accelerator)
    }

    /// Every profile.
    pub fn profiles(&self) -> &[HardwareProfile] {
        &self.profiles
    }

    /// "model@accelerator" of every profile, for error messages.
    pub fn known_pairs(&self) -> Vec<String> {
        self.profiles.iter().map(|p| format!("{}@{}", p.model(), p.accelerator())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_is_valid_and_has_the_original_rates() {
        let t = HardwareTable::builtin();
        let p = t.find("meta-llama/Llama-2-7b-hf", "nvidia-h100-80gb").unwrap();
        assert_eq!(p.base_rates, [10.0, 20.0, 30.0, 40.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
        assert!(t.find("meta-llama/Llama-2-7b-hf", "nvidia-tesla-k80").is_none());
    }

    #[test]
    fn bad_rows_are_reported_with_their_place() {
        let f = SourceFile::new(
            "h.pbtxt".into(),
            "profiles { model: \"m\" accelerator: \"a\" base_rates: [1, -2] }\nprofiles { model: \"m\" accelerator: \"a\" base_rates: 1 }\nprofiles { }".into(),
        );
        let e = HardwareTable::parse(Arc::new(f)).unwrap_err().to_string();
        assert!(e.contains("h.pbtxt:1:56: profiles[0].base_rates[1]: rates must be > 0, got -2"), "{e}");
        assert!(e.contains("h.pbtxt:2:1: profiles[1]: duplicate profile m@a"), "{e}");
        assert!(e.contains("h.pbtxt:3:1: profiles[2].model: required"), "{e}");
        assert!(e.ends_with("5 errors"), "{e}");
    }
}
