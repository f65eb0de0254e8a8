//! Registry documentation (`docs/index.md`, `docs/resources/…`,
//! `docs/data-sources/…`, `docs/ephemeral-resources/…`) rendered from the
//! schemas Terraform sees, so the attribute descriptions are written once,
//! as `///` comments on the models. `terraform-provider-tokenops docs`
//! writes them; a test fails when the committed files are stale.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tfplugin::{Attribute, Model, Nesting, Type};

use crate::config::ProviderConfig;
use crate::data_sources::{TokenList, TokenLookup};
use crate::ephemeral::EphemeralApiToken;
use crate::token::ApiToken;

const EXAMPLE_PROVIDER: &str = r#"terraform {
  required_providers {
    tokenops = {
      source = "tokenops/tokenops"
    }
  }
}

variable "tokenops_token" {
  type      = string
  sensitive = true
}

# endpoint and token may also come from TOKENOPS_ENDPOINT and TOKENOPS_TOKEN.
provider "tokenops" {
  endpoint = "https://tokens.example.com"
  token    = var.tokenops_token
}
"#;

const EXAMPLE_RESOURCE: &str = r#"resource "tokenops_api_token" "monitoring" {
  name        = "monitoring"
  description = "Read-only token for the monitoring stack"
  role        = "read-only"
  resources = [
    { type = "site", id = "s-berlin" },
    { type = "site", id = "s-paris" },
  ]
  lifetime      = "720h"
  rotate_before = "240h" # or a share of the lifetime, e.g. "33%"
  grace_period  = "1h"
  labels = {
    team = "observability"
  }
}

output "monitoring_token" {
  value     = tokenops_api_token.monitoring.token
  sensitive = true
}
"#;

const IMPORT: &str = r#"Import a token by id. Its value cannot be recovered, so `token` stays
null until the token is regenerated (e.g. by changing `rotation_triggers`).
Tokens managed by the tokenops Kubernetes operator cannot be imported.

```terraform
import {
  to = tokenops_api_token.legacy
  id = "tok_0123456789abcdef"
}
```

```shell
terraform import tokenops_api_token.legacy tok_0123456789abcdef
```
"#;

const ROTATION: &str = r#"## Rotation

The provider uses the rotation rule shared with the tokenops operator: a
value issued at `t0` that expires at `t1` is due at `t1 - rotate_before`
(default: when a third of the lifetime is left). From then on `terraform
plan` shows an in-place update of the token: `token`, `masked` and
`expires_at` become *known after apply*, the `id` stays. Applying it
regenerates the token on the backend; with `grace_period` the previous value
keeps working for that long. Run `terraform plan` / `apply` regularly (e.g.
a scheduled pipeline) so tokens are rotated before they expire.

The decision is made from the clock at plan time. If a window opens between
a saved plan and its apply, Terraform reports an inconsistent final plan for
that token; planning again picks the rotation up.

Changing `lifetime` or any value in `rotation_triggers` regenerates the
token the same way. Changing `role`, `scopes`, `resources` or `project`
replaces it (a new id), because the backend never changes a token's
permissions.

A token revoked or deleted outside Terraform reads as gone: the next plan
creates it again. Destroying the resource revokes the token (the backend
keeps the record for audit).
"#;

const EXAMPLE_TOKEN_DATA: &str = r#"data "tokenops_api_token" "ci" {
  id = "tok_0123456789abcdef"
}

output "ci_token_expires_at" {
  value = data.tokenops_api_token.ci.expires_at
}
"#;

const EXAMPLE_TOKENS_DATA: &str = r#"data "tokenops_api_tokens" "web" {
  status = "active"
  labels = {
    team = "web"
  }
}

output "web_token_ids" {
  value = data.tokenops_api_tokens.web.ids
}
"#;

const EXAMPLE_EPHEMERAL: &str = r#"# A token that exists only while Terraform runs, e.g. to configure
# another provider. It is revoked when Terraform is done with it.
ephemeral "tokenops_api_token" "deploy" {
  name     = "terraform-run"
  role     = "read-only"
  lifetime = "15m"
}

provider "tokenops" {
  alias    = "run"
  endpoint = "https://tokens.example.com"
  token    = ephemeral.tokenops_api_token.deploy.token
}
"#;

fn type_name(ty: &Type) -> String {
    match ty {
        Type::String => "String".into(),
        Type::Number => "Number".into(),
        Type::Bool => "Boolean".into(),
        Type::List(t) => format!("List of {}", type_name(t)),
        Type::Set(t) => format!("Set of {}", type_name(t)),
        Type::Map(t) => format!("Map of {}", type_name(t)),
        Type::Object(_) => "Object".into(),
        other => format!("{other}"),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn attribute_line(out: &mut String, a: &Attribute, path: &str) {
    let sensitive = if a.sensitive { ", Sensitive" } else { "" };
    let (ty, see) = match &a.nested {
        Some(n) => (
            format!("Attributes {}", nesting_name(n.nesting)),
            format!(
                " (see [below for nested schema](#nestedatt--{}))",
                anchor(path)
            ),
        ),
        None => (type_name(&a.ty), String::new()),
    };
    let _ = writeln!(
        out,
        "- `{}` ({ty}{sensitive}) {}{see}",
        a.name,
        one_line(&a.description)
    );
}

fn nesting_name(n: Nesting) -> &'static str {
    match n {
        Nesting::Single => "",
        Nesting::List => "List",
        Nesting::Set => "Set",
        Nesting::Map => "Map",
    }
}

fn anchor(path: &str) -> String {
    path.replace('.', "--")
}

/// Chooses the attributes of one group of the schema section.
type Pick = fn(&Attribute) -> bool;

/// Required, Optional and Read-Only lists of one level of attributes.
fn attribute_groups(out: &mut String, attrs: &[Attribute], path: &str, heading: &str) {
    let groups: [(&str, Pick); 3] = [
        ("Required", |a| a.required),
        ("Optional", |a| a.optional),
        ("Read-Only", |a| a.computed && !a.optional && !a.required),
    ];
    for (title, pick) in groups {
        let chosen: Vec<_> = attrs.iter().filter(|a| pick(a)).collect();
        if chosen.is_empty() {
            continue;
        }
        if heading.is_empty() {
            let _ = writeln!(out, "\n{title}:\n");
        } else {
            let _ = writeln!(out, "\n{heading} {title}\n");
        }
        for a in chosen {
            let child = if path.is_empty() {
                a.name.clone()
            } else {
                format!("{path}.{}", a.name)
            };
            attribute_line(out, a, &child);
        }
    }
}

/// The "Schema" section: Required, Optional, Read-Only, then one section per
/// nested attribute (at any depth), all from the schema itself.
fn schema_section(attrs: &[Attribute]) -> String {
    let mut out = String::from("## Schema\n");
    attribute_groups(&mut out, attrs, "", "###");
    let mut pending: Vec<(String, &Attribute)> =
        attrs.iter().map(|a| (a.name.clone(), a)).collect();
    while !pending.is_empty() {
        let mut next = Vec::new();
        for (path, a) in pending {
            let Some(n) = &a.nested else { continue };
            let _ = writeln!(
                out,
                "\n<a id=\"nestedatt--{}\"></a>\n### Nested Schema for `{path}`",
                anchor(&path)
            );
            attribute_groups(&mut out, &n.attributes, &path, "");
            next.extend(
                n.attributes
                    .iter()
                    .map(|c| (format!("{path}.{}", c.name), c)),
            );
        }
        pending = next;
    }
    out
}

fn page(
    title: &str,
    subcategory: &str,
    description: &str,
    example: &str,
    schema: &str,
    extra: &[&str],
) -> String {
    let summary = one_line(description.split("\n\n").next().unwrap_or_default());
    let mut out = format!(
        "---\npage_title: \"{title} - tokenops\"\nsubcategory: \"{subcategory}\"\ndescription: |-\n  {summary}\n---\n\n# {title}\n\n{description}\n\n## Example Usage\n\n```terraform\n{example}```\n\n{schema}"
    );
    for e in extra {
        out.push('\n');
        out.push_str(e);
    }
    out
}

/// The Terraform snippets of the docs, by name; each is a complete
/// configuration that `terraform validate` accepts (a test checks that).
pub fn examples() -> Vec<(&'static str, &'static str)> {
    vec![
        ("provider", EXAMPLE_PROVIDER),
        ("resource", EXAMPLE_RESOURCE),
        ("data_token", EXAMPLE_TOKEN_DATA),
        ("data_tokens", EXAMPLE_TOKENS_DATA),
        ("ephemeral", EXAMPLE_EPHEMERAL),
    ]
}

/// Every documentation file: its path under `docs/` and its content.
pub fn render_all() -> Vec<(PathBuf, String)> {
    let provider = {
        let summary = ProviderConfig::description();
        format!(
            "---\npage_title: \"Provider: tokenops\"\ndescription: |-\n  {}\n---\n\n# tokenops Provider\n\n{summary}\n\n## Example Usage\n\n```terraform\n{EXAMPLE_PROVIDER}```\n\n{}",
            one_line(summary.split("\n\n").next().unwrap_or_default()),
            schema_section(&ProviderConfig::attributes())
        )
    };
    let import_section = format!("## Import\n\n{IMPORT}");
    vec![
        (PathBuf::from("index.md"), provider),
        (
            PathBuf::from("resources/api_token.md"),
            page(
                "tokenops_api_token (Resource)",
                "",
                &ApiToken::description(),
                EXAMPLE_RESOURCE,
                &schema_section(&ApiToken::attributes()),
                &[ROTATION, &import_section],
            ),
        ),
        (
            PathBuf::from("data-sources/api_token.md"),
            page(
                "tokenops_api_token (Data Source)",
                "",
                &TokenLookup::description(),
                EXAMPLE_TOKEN_DATA,
                &schema_section(&TokenLookup::attributes()),
                &[],
            ),
        ),
        (
            PathBuf::from("data-sources/api_tokens.md"),
            page(
                "tokenops_api_tokens (Data Source)",
                "",
                &TokenList::description(),
                EXAMPLE_TOKENS_DATA,
                &schema_section(&TokenList::attributes()),
                &[],
            ),
        ),
        (
            PathBuf::from("ephemeral-resources/api_token.md"),
            page(
                "tokenops_api_token (Ephemeral Resource)",
                "",
                &EphemeralApiToken::description(),
                EXAMPLE_EPHEMERAL,
                &schema_section(&EphemeralApiToken::attributes()),
                &[],
            ),
        ),
    ]
}

/// Writes every documentation file under `dir`; returns the paths written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, content) in render_all() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
        written.push(path);
    }
    Ok(written)
}
