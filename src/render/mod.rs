//! Render: a planned benchmark → Kubernetes manifests, through tera templates.
//!
//! Templates are the files of `templates/` (built into the binary; `--templates DIR` uses another
//! folder). Each template renders one manifest file of the same name; a template that renders
//! nothing but whitespace (e.g. no model server for an external endpoint) writes no file. Every
//! rendered document is parsed back as a Kubernetes object, so a template mistake fails at
//! generate time naming the template and line, not at apply time on a cluster.

pub mod check;
pub mod context;

use std::{collections::HashMap, path::Path};

use tera::Tera;

pub use check::ObjectRef;
pub use context::{Context, RenderOptions};

use crate::plan::Planned;

/// The templates built into the binary, in apply order.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    ("00-namespace.yaml", include_str!("../../templates/00-namespace.yaml")),
    ("10-model-server.yaml", include_str!("../../templates/10-model-server.yaml")),
    ("20-load-balancer.yaml", include_str!("../../templates/20-load-balancer.yaml")),
    ("30-load-engine.yaml", include_str!("../../templates/30-load-engine.yaml")),
];

/// What can go wrong while rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template does not parse or fails to render (tera's message names the template and,
    /// for syntax errors, the line).
    #[error("template {template}: {message}")]
    Template {
        /// Template file name.
        template: String,
        /// tera's error chain.
        message: String,
    },
    /// A template rendered text that is not YAML.
    #[error(
        "template {template} rendered invalid YAML at line {line}, column {col} of its output: {message}\n{snippet}"
    )]
    Yaml {
        /// Template file name.
        template: String,
        /// Line in the rendered output.
        line: usize,
        /// Column in the rendered output.
        col: usize,
        /// The YAML parser's message.
        message: String,
        /// The rendered lines around the error.
        snippet: String,
    },
    /// A rendered document is YAML but not a valid Kubernetes object.
    #[error("template {template}, document {doc} starting at line {line} of its output ({what}): {message}")]
    Object {
        /// Template file name.
        template: String,
        /// 1-based document index in the rendered file.
        doc: usize,
        /// Line where the document starts in the rendered output.
        line: usize,
        /// `Kind/name` as far as known.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The templates folder cannot be read.
    #[error("cannot read templates from {dir}: {message}")]
    Folder {
        /// The folder.
        dir: String,
        /// Why.
        message: String,
    },
}

/// One rendered manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File name under `manifests/` (the template's name).
    pub file: String,
    /// Its YAML text.
    pub text: String,
    /// The objects in it.
    pub objects: Vec<ObjectRef>,
}

/// Loaded templates.
pub struct Renderer {
    tera: Tera,
    names: Vec<String>,
    options: RenderOptions,
}

fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// `q`: any value as a YAML-safe scalar (JSON encoding is valid YAML and quotes everything that
/// needs quoting: "true", "1", ": ", "#").
fn q_filter(v: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    Ok(tera::Value::String(serde_json::to_string(v).map_err(|e| tera::Error::msg(e.to_string()))?))
}

/// `qs`: a value's text as a quoted string (`true` → `"true"`, `8081` → `"8081"`), for fields
/// Kubernetes wants as strings (env values, annotations).
fn qs_filter(v: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let text = match v {
        tera::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(tera::Value::String(serde_json::to_string(&text).map_err(|e| tera::Error::msg(e.to_string()))?))
}

/// `indent(n=4)`: prefixes every non-empty line with n spaces (for YAML block scalars).
fn indent_filter(v: &tera::Value, args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let n = args.get("n").and_then(tera::Value::as_u64).unwrap_or(4) as usize;
    let s = v.as_str().ok_or_else(|| tera::Error::msg("indent: expected a string"))?;
    let pad = " ".repeat(n);
    let out: Vec<String> = s
        .trim_end_matches('\n')
        .lines()
        .map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") })
        .collect();
    Ok(tera::Value::String(out.join("\n")))
}

impl Renderer {
    /// The built-in templates.
    pub fn builtin(options: RenderOptions) -> Result<Self, RenderError> {
        let list: Vec<(String, String)> =
            BUILTIN_TEMPLATES.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
        Self::from_templates(list, options)
    }

    /// Every `*.yaml` file of a folder, applied in file-name order.
    pub fn from_dir(dir: &Path, options: RenderOptions) -> Result<Self, RenderError> {
        let err = |e: std::io::Error| RenderError::Folder { dir: dir.display().to_string(), message: e.to_string() };
        let mut list = vec![];
        for ent in std::fs::read_dir(dir).map_err(err)? {
            let p = ent.map_err(err)?.path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
                list.push((name, std::fs::read_to_string(&p).map_err(err)?));
            }
        }
        if list.is_empty() {
            return Err(RenderError::Folder { dir: dir.display().to_string(), message: "no *.yaml templates".into() });
        }
        Self::from_templates(list, options)
    }

    /// Templates given as (file name, text).
    pub fn from_templates(mut list: Vec<(String, String)>, options: RenderOptions) -> Result<Self, RenderError> {
        list.sort();
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("q", q_filter);
        tera.register_filter("qs", qs_filter);
        tera.register_filter("indent", indent_filter);
        for (name, text) in &list {
            tera.add_raw_template(name, text)
                .map_err(|e| RenderError::Template { template: name.clone(), message: tera_message(&e) })?;
        }
        Ok(Self { tera, names: list.into_iter().map(|(n, _)| n).collect(), options })
    }

    /// The options.
    pub fn options(&self) -> &RenderOptions {
        &self.options
    }

    /// Renders one planned benchmark into checked manifests.
    pub fn render(&self, p: &Planned, run_id: &str) -> Result<Vec<Manifest>, RenderError> {
        let ctx = context::build(p, run_id, &self.options);
        self.render_context(&ctx)
    }

    /// Renders a context (for tests and custom contexts).
    pub fn render_context(&self, ctx: &Context) -> Result<Vec<Manifest>, RenderError> {
        let tctx = tera::Context::from_serialize(ctx)
            .map_err(|e| RenderError::Template { template: "(context)".into(), message: tera_message(&e) })?;
        let mut out = vec![];
        for name in &self.names {
            let text = self
                .tera
                .render(name, &tctx)
                .map_err(|e| RenderError::Template { template: name.clone(), message: tera_message(&e) })?;
            if text.trim().is_empty() {
                continue;
            }
            let mut text = text.trim_start_matches('\n').to_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let objects = check::check(name, &text, &ctx.namespace, &ctx.labels)?;
            out.push(Manifest { file: name.clone(), text, objects });
        }
        Ok(out)
    }
}
