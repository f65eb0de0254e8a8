//! Diagnostics: the errors and warnings Terraform shows to the user.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;

use crate::path::AttributePath;
use crate::proto::tfplugin6 as pb;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The operation failed.
    Error,
    /// Shown to the user; the operation goes on.
    Warning,
}

/// One error or warning, optionally pointing at an attribute.
///
/// ```
/// use tfplugin::{AttributePath, Diagnostic};
/// let diag = Diagnostic::error("Invalid lifetime")
///     .with_detail("must be at most 8760h")
///     .with_attribute(AttributePath::new("lifetime"));
/// assert!(diag.is_error());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One line; Terraform prints it after "Error: ".
    pub summary: String,
    /// Longer explanation; may be empty.
    pub detail: String,
    /// The attribute the diagnostic is about, if any.
    pub attribute: Option<AttributePath>,
}

impl Diagnostic {
    /// An error with `summary`.
    pub fn error(summary: impl Into<String>) -> Self {
        Self::new(Severity::Error, summary)
    }

    /// A warning with `summary`.
    pub fn warning(summary: impl Into<String>) -> Self {
        Self::new(Severity::Warning, summary)
    }

    fn new(severity: Severity, summary: impl Into<String>) -> Self {
        Self {
            severity,
            summary: summary.into(),
            detail: String::new(),
            attribute: None,
        }
    }

    /// Sets the detail text.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Points the diagnostic at an attribute.
    pub fn with_attribute(mut self, path: impl Into<AttributePath>) -> Self {
        self.attribute = Some(path.into());
        self
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub(crate) fn to_proto(&self) -> pb::Diagnostic {
        pb::Diagnostic {
            severity: match self.severity {
                Severity::Error => pb::diagnostic::Severity::Error,
                Severity::Warning => pb::diagnostic::Severity::Warning,
            } as i32,
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: self.attribute.as_ref().map(AttributePath::to_proto),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.summary)?;
        if let Some(path) = &self.attribute {
            write!(f, " (at {path})")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A list of [`Diagnostic`]s; also the error type of every provider callback
/// (see [`crate::Result`]).
///
/// ```
/// use tfplugin::{Diagnostic, Diagnostics};
/// let mut diags = Diagnostics::new();
/// diags.warning("Deprecated", "use `lifetime` instead");
/// assert!(!diags.has_errors());
/// diags.push(Diagnostic::error("Invalid name").with_attribute("name"));
/// assert!(diags.has_errors());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a diagnostic.
    pub fn push(&mut self, diag: Diagnostic) -> &mut Self {
        self.0.push(diag);
        self
    }

    /// Appends an error.
    pub fn error(&mut self, summary: impl Into<String>, detail: impl Into<String>) -> &mut Self {
        self.push(Diagnostic::error(summary).with_detail(detail))
    }

    /// Appends a warning.
    pub fn warning(&mut self, summary: impl Into<String>, detail: impl Into<String>) -> &mut Self {
        self.push(Diagnostic::warning(summary).with_detail(detail))
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: Diagnostics) -> &mut Self {
        self.0.extend(other.0);
        self
    }

    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The diagnostics in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub(crate) fn to_proto(&self) -> Vec<pb::Diagnostic> {
        self.0.iter().map(Diagnostic::to_proto).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diag: Diagnostic) -> Self {
        Self(vec![diag])
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

tokio::task_local! {
    static WARNINGS: RefCell<Diagnostics>;
}

/// Adds a warning to the response of the RPC currently being handled, for
/// callbacks that succeed but have something to tell the user (e.g. "this
/// token expires in 3 days"). Outside an RPC the warning is only logged.
///
/// ```
/// tfplugin::warn(tfplugin::Diagnostic::warning("Token expires soon").with_attribute("expires_at"));
/// ```
pub fn warn(diag: Diagnostic) {
    let mut diag = Some(diag);
    let _ = WARNINGS.try_with(|w| {
        if let Some(d) = diag.take() {
            w.borrow_mut().push(d);
        }
    });
    if let Some(d) = diag {
        tracing::warn!("{d}");
    }
}

/// Runs `fut`, collecting what it passes to [`warn`].
pub(crate) async fn collect_warnings<T>(fut: impl Future<Output = T>) -> (T, Diagnostics) {
    WARNINGS
        .scope(RefCell::new(Diagnostics::new()), async move {
            let out = fut.await;
            let warnings = WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()));
            (out, warnings)
        })
        .await
}

/// The result type of provider callbacks: errors are [`Diagnostics`].
pub type Result<T, E = Diagnostics> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use pb::attribute_path::step::Selector;

    #[test]
    fn diagnostics_carry_severity_summary_detail_and_attribute() {
        let mut diags = Diagnostics::new();
        diags.warning("Deprecated", "use lifetime");
        diags.push(
            Diagnostic::error("Invalid scope")
                .with_detail("unknown action")
                .with_attribute(AttributePath::new("scopes").index(1)),
        );
        let wire = diags.to_proto();
        assert_eq!(wire[0].severity, pb::diagnostic::Severity::Warning as i32);
        assert!(wire[0].attribute.is_none());
        assert_eq!(wire[1].severity, pb::diagnostic::Severity::Error as i32);
        assert_eq!(wire[1].summary, "Invalid scope");
        assert_eq!(wire[1].detail, "unknown action");
        let steps = &wire[1].attribute.as_ref().unwrap().steps;
        assert_eq!(
            steps[0].selector,
            Some(Selector::AttributeName("scopes".into()))
        );
        assert_eq!(steps[1].selector, Some(Selector::ElementKeyInt(1)));
        assert!(diags.has_errors());
        assert_eq!(
            diags.to_string(),
            "warning: Deprecated: use lifetime; error: Invalid scope (at scopes[1]): unknown action"
        );
    }
}
