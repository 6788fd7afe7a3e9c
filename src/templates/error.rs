//! [`TemplateError`]: why a template could not be rendered, saying what to do about it.

use std::fmt;

/// A template that could not be rendered. As a handler's answer it is a logged `500` (the
/// client sees nothing of it); from [`Templates::render`](super::Templates::render) and
/// friends it is returned.
#[derive(Debug)]
#[non_exhaustive]
pub enum TemplateError {
    /// No template of this name was loaded.
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The template has no block of this name.
    UnknownBlock {
        /// The template.
        template: String,
        /// The block asked for.
        block: String,
        /// The blocks it has (its own and those of the templates it extends).
        blocks: Vec<String>,
    },
    /// A template response was rendered by an app that registered no templates.
    NotRegistered,
    /// minijinja failed: a syntax error (an inline template, a reloaded file), an undefined
    /// filter, a value that cannot be iterated, ...
    Render(minijinja::Error),
    /// Reloading the templates' directory failed (see
    /// [`Templates::auto_reload`](super::Templates::auto_reload)).
    Reload(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::NotFound { name } => write!(
                f,
                "template `{name}` not found: check its name (relative to the templates' \
                 directory, with `/`) or add it to the Templates the app registered"
            ),
            TemplateError::UnknownBlock {
                template,
                block,
                blocks,
            } => {
                write!(f, "template `{template}` has no block `{block}`; ")?;
                if blocks.is_empty() {
                    write!(f, "it has no blocks at all: add `{{% block {block} %}}...{{% endblock %}}` to it")
                } else {
                    write!(f, "its blocks are: {}", blocks.join(", "))
                }
            }
            TemplateError::NotRegistered => f.write_str(
                "a handler answered with a template, but the app registered no templates: \
                 call App::templates(Templates::from_dir(\"templates\")?) before building it",
            ),
            TemplateError::Render(e) => {
                write!(f, "template rendering failed: {e}")?;
                if let (Some(name), Some(line)) = (e.name(), e.line()) {
                    write!(f, " (at {name}, line {line})")?;
                }
                Ok(())
            }
            TemplateError::Reload(why) => write!(f, "reloading the templates failed: {why}"),
        }
    }
}

impl std::error::Error for TemplateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TemplateError::Render(e) => Some(e),
            _ => None,
        }
    }
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        TemplateError::Render(e)
    }
}
