//! Attribute paths: where in a value a diagnostic or a plan decision applies.

use std::fmt;

use crate::proto::tfplugin6 as pb;

/// One step of an [`AttributePath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// An attribute of an object.
    Attribute(String),
    /// An element of a map, by key.
    Key(String),
    /// An element of a list or tuple, by index.
    Index(i64),
}

/// A path from the root object of a schema to one nested value, e.g.
/// `tags["team"]` or `rules[0].name`.
///
/// ```
/// use tfplugin::AttributePath;
/// let path = AttributePath::new("rules").index(0).attr("name");
/// assert_eq!(path.to_string(), "rules[0].name");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AttributePath {
    steps: Vec<Step>,
}

impl AttributePath {
    /// The path of the top-level attribute `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self::root().attr(name)
    }

    /// The empty path: the whole value.
    pub fn root() -> Self {
        Self::default()
    }

    /// Descends into attribute `name`.
    pub fn attr(mut self, name: impl Into<String>) -> Self {
        self.steps.push(Step::Attribute(name.into()));
        self
    }

    /// Descends into the map element with key `key`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.steps.push(Step::Key(key.into()));
        self
    }

    /// Descends into the list or tuple element at `index`.
    pub fn index(mut self, index: i64) -> Self {
        self.steps.push(Step::Index(index));
        self
    }

    /// The steps, outermost first.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// True for the empty path.
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// Converts to the wire form.
    pub fn to_proto(&self) -> pb::AttributePath {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: self
                .steps
                .iter()
                .map(|s| pb::attribute_path::Step {
                    selector: Some(match s {
                        Step::Attribute(n) => Selector::AttributeName(n.clone()),
                        Step::Key(k) => Selector::ElementKeyString(k.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }

    /// Converts from the wire form.
    pub fn from_proto(path: &pb::AttributePath) -> Self {
        use pb::attribute_path::step::Selector;
        Self {
            steps: path
                .steps
                .iter()
                .filter_map(|s| {
                    Some(match s.selector.as_ref()? {
                        Selector::AttributeName(n) => Step::Attribute(n.clone()),
                        Selector::ElementKeyString(k) => Step::Key(k.clone()),
                        Selector::ElementKeyInt(i) => Step::Index(*i),
                    })
                })
                .collect(),
        }
    }
}

impl From<&str> for AttributePath {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Attribute(n) if i == 0 => f.write_str(n)?,
                Step::Attribute(n) => write!(f, ".{n}")?,
                Step::Key(k) => write!(f, "[{k:?}]")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_like_terraform_references() {
        let path = AttributePath::new("tags").key("team");
        assert_eq!(path.to_string(), "tags[\"team\"]");
        assert_eq!(
            AttributePath::new("rules").index(2).attr("id").to_string(),
            "rules[2].id"
        );
    }

    #[test]
    fn paths_round_trip_through_the_wire_form() {
        let path = AttributePath::new("rules").index(2).attr("labels").key("k");
        let wire = path.to_proto();
        assert_eq!(wire.steps.len(), 4);
        assert_eq!(AttributePath::from_proto(&wire), path);
    }
}
