//! The survey templates: emails (HTML and plain text) and answer pages, with minijinja.
//!
//! The built-in templates live in `templates/` and are embedded in the binary; a file of the
//! same name in `surveys.templates_dir` replaces one. HTML templates escape every value
//! (auto-escape by extension), so a CRM value such as a name or a comment can never become
//! markup; plain-text templates do not escape. Undefined variables are errors. Every template
//! is rendered against sample data when the settings load, so a broken template stops
//! start-up instead of a send.

use std::path::Path;

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::model::SurveyKind;
use crate::settings::ConfigError;

/// Every template, with its built-in source.
const BUILT_IN: [(&str, &str); 15] = [
    (
        "email/layout.html",
        include_str!("../../templates/email/layout.html"),
    ),
    (
        "email/layout.txt",
        include_str!("../../templates/email/layout.txt"),
    ),
    (
        "email/nps.subject.txt",
        include_str!("../../templates/email/nps.subject.txt"),
    ),
    (
        "email/nps.html",
        include_str!("../../templates/email/nps.html"),
    ),
    (
        "email/nps.txt",
        include_str!("../../templates/email/nps.txt"),
    ),
    (
        "email/goal.subject.txt",
        include_str!("../../templates/email/goal.subject.txt"),
    ),
    (
        "email/goal.html",
        include_str!("../../templates/email/goal.html"),
    ),
    (
        "email/goal.txt",
        include_str!("../../templates/email/goal.txt"),
    ),
    (
        "pages/layout.html",
        include_str!("../../templates/pages/layout.html"),
    ),
    (
        "pages/nps.html",
        include_str!("../../templates/pages/nps.html"),
    ),
    (
        "pages/goal.html",
        include_str!("../../templates/pages/goal.html"),
    ),
    (
        "pages/thanks.html",
        include_str!("../../templates/pages/thanks.html"),
    ),
    (
        "pages/unsubscribe.html",
        include_str!("../../templates/pages/unsubscribe.html"),
    ),
    (
        "pages/unsubscribed.html",
        include_str!("../../templates/pages/unsubscribed.html"),
    ),
    (
        "pages/error.html",
        include_str!("../../templates/pages/error.html"),
    ),
];

/// The longest comment and goal text the pages accept.
pub const MAX_COMMENT_CHARS: usize = 2000;
pub const MAX_GOAL_CHARS: usize = 300;

/// One score link of the NPS email.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreLink {
    pub score: u8,
    pub url: String,
}

/// What a survey email shows.
#[derive(Debug, Clone, Serialize)]
pub struct EmailContext {
    pub product_name: String,
    pub sender_name: String,
    pub recipient_name: Option<String>,
    pub account_name: String,
    /// NPS: one link per score, 0 to 10.
    pub scores: Vec<ScoreLink>,
    /// Goal survey: the answer page with "yes" or "no" preselected.
    pub yes_url: String,
    pub no_url: String,
    pub unsubscribe_url: String,
    /// The last day the answer links work.
    pub expires_on: String,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The loaded and checked templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates(..)")
    }
}

impl Templates {
    /// Loads the built-in templates, replaced by those in `dir` when given, and renders each
    /// against sample data.
    pub fn load(dir: Option<&Path>) -> Result<Self, ConfigError> {
        if let Some(dir) = dir {
            check_overrides(dir)?;
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(
                        "surveys.templates_dir",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
                None => source.to_owned(),
            };
            env.add_template_owned(name, source)
                .map_err(|e| template_error(name, &e))?;
        }
        let templates = Self { env };
        templates.check()?;
        Ok(templates)
    }

    /// Renders every template against sample data.
    fn check(&self) -> Result<(), ConfigError> {
        let email = sample_email();
        for survey in [SurveyKind::Nps, SurveyKind::Goal] {
            self.email(survey, &email)
                .map_err(|e| template_error(&format!("email/{}", survey.as_str()), &e))?;
        }
        for (name, context) in sample_pages() {
            self.page(name, &context)
                .map_err(|e| template_error(&format!("pages/{name}.html"), &e))?;
        }
        Ok(())
    }

    /// Renders a survey email.
    pub fn email(
        &self,
        survey: SurveyKind,
        context: &EmailContext,
    ) -> Result<Rendered, minijinja::Error> {
        let name = survey.as_str();
        let subject = self.render(&format!("email/{name}.subject.txt"), context)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let value = Value::from(Serde(context));
        let with_subject = minijinja::context! { subject => subject.clone(), ..value };
        Ok(Rendered {
            html: self.render_value(&format!("email/{name}.html"), with_subject.clone())?,
            text: self.render_value(&format!("email/{name}.txt"), with_subject)?,
            subject,
        })
    }

    /// Renders an answer page (`nps`, `goal`, `thanks`, `unsubscribe`, `unsubscribed`,
    /// `error`).
    pub fn page(&self, name: &str, context: &impl Serialize) -> Result<String, minijinja::Error> {
        self.render(&format!("pages/{name}.html"), context)
    }

    fn render(&self, name: &str, context: &impl Serialize) -> Result<String, minijinja::Error> {
        self.render_value(name, Value::from(Serde(context)))
    }

    fn render_value(&self, name: &str, context: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// Checks that `dir` is a folder and that every file in it replaces a built-in template: a
/// misspelt name (`email/nps.htm`) would otherwise be ignored without a word, and the built-in
/// template sent instead. Names starting with a dot (`.git`, editor files) are not templates
/// and are passed over.
fn check_overrides(dir: &Path) -> Result<(), ConfigError> {
    let key = "surveys.templates_dir";
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(ConfigError::new(key, format!("{} {what}", dir.display())));
    }
    let mut files = Vec::new();
    list_files(dir, Path::new(""), &mut files)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", dir.display())))?;
    let known = |name: &str| BUILT_IN.iter().any(|(built_in, _)| *built_in == name);
    match files.into_iter().find(|name| !known(name)) {
        Some(stray) => {
            let names: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
            Err(ConfigError::new(
                key,
                format!(
                    "{} matches no built-in template, so it would never be used; the names \
                     are {}",
                    dir.join(&stray).display(),
                    names.join(", ")
                ),
            ))
        }
        None => Ok(()),
    }
}

/// The files under `dir` (from its subfolder `relative` down), as `/`-separated paths
/// relative to `dir`.
fn list_files(dir: &Path, relative: &Path, files: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(relative))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = relative.join(&name);
        if entry.file_type()?.is_dir() {
            list_files(dir, &path, files)?;
        } else {
            let parts: Vec<String> = path
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(parts.join("/"));
        }
    }
    Ok(())
}

fn template_error(name: &str, error: &minijinja::Error) -> ConfigError {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    ConfigError::new(format!("template {name}"), text)
}

/// Sample data with markup in every text, to exercise escaping as well as the variables.
fn sample_email() -> EmailContext {
    let url = "https://answers.example.com/s/sample-token";
    EmailContext {
        product_name: "Product <b>".into(),
        sender_name: "Customer Success".into(),
        recipient_name: Some("Zoë <script>".into()),
        account_name: "Acme & Co".into(),
        scores: (0..=10)
            .map(|score| ScoreLink {
                score,
                url: format!("{url}?score={score}"),
            })
            .collect(),
        yes_url: format!("{url}?achieved=yes"),
        no_url: format!("{url}?achieved=no"),
        unsubscribe_url: "https://answers.example.com/u/sample-token".into(),
        expires_on: "2025-07-01".into(),
    }
}

fn sample_pages() -> Vec<(&'static str, serde_json::Value)> {
    let common = serde_json::json!({
        "product_name": "Product <b>",
        "title": "Sample",
        "action": "/s/sample-token",
        "account_name": "Acme & Co",
        "expires_on": "2025-07-01",
        "max_comment": MAX_COMMENT_CHARS,
        "max_goal": MAX_GOAL_CHARS,
        "previous": {"submitted_on": "2025-06-01"},
        "score": 7,
        "achieved": "yes",
        "goal": "<i>faster</i>",
        "comment": "<script>alert(1)</script>",
        "survey": "nps",
        "recipient": "z***@e***.com",
        "message": "Sample <message>",
    });
    [
        "nps",
        "goal",
        "thanks",
        "unsubscribe",
        "unsubscribed",
        "error",
    ]
    .into_iter()
    .map(|name| (name, common.clone()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_templates_load_and_escape_crm_values_in_html_only() {
        let templates = Templates::load(None).expect("the built-in templates are valid");
        let email = templates
            .email(SurveyKind::Nps, &sample_email())
            .expect("renders");
        assert!(email.subject.starts_with("Zoë <script>, how likely"));
        assert!(email.html.contains("Zoë &lt;script&gt;"));
        assert!(!email.html.contains("<script>"));
        assert!(email.text.contains("Hello Zoë <script>,"));
        assert!(
            email
                .text
                .contains("10: https://answers.example.com/s/sample-token?score=10")
        );
        assert!(!email.html.contains("http://") && !email.html.contains("src="));
    }

    #[test]
    fn a_templates_dir_that_is_missing_a_file_or_holds_a_stray_name_stops_loading() {
        let dir = tempfile::TempDir::new().expect("a folder");
        let missing = dir.path().join("no-such-folder");
        let err = Templates::load(Some(&missing)).unwrap_err();
        assert_eq!(err.key, "surveys.templates_dir");
        assert!(err.problem.contains("does not exist"), "{err}");

        let elsewhere = tempfile::TempDir::new().expect("a folder");
        let file = elsewhere.path().join("a-file");
        std::fs::write(&file, "not a folder").expect("written");
        let err = Templates::load(Some(&file)).unwrap_err();
        assert!(err.problem.contains("is not a folder"), "{err}");

        std::fs::create_dir_all(dir.path().join("email")).expect("a folder");
        std::fs::write(dir.path().join(".notes"), "hidden files are passed over").expect("w");
        std::fs::write(dir.path().join("email/nps.txt"), "Hello").expect("written");
        assert!(
            Templates::load(Some(dir.path())).is_ok(),
            "a real override loads"
        );
        std::fs::write(dir.path().join("email/nps.htm"), "<p>Hello</p>").expect("written");
        let err = Templates::load(Some(dir.path())).unwrap_err();
        assert_eq!(err.key, "surveys.templates_dir");
        assert!(
            err.problem.contains("email/nps.htm matches no built-in"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_template_stops_loading_with_its_name() {
        let dir = tempfile::TempDir::new().expect("a folder");
        std::fs::create_dir_all(dir.path().join("email")).expect("a folder");
        std::fs::write(dir.path().join("email/goal.html"), "{{ missing_value }}").expect("w");
        let err = Templates::load(Some(dir.path())).unwrap_err();
        assert_eq!(err.key, "template email/goal");
        std::fs::write(dir.path().join("email/goal.html"), "{% if %}").expect("w");
        let err = Templates::load(Some(dir.path())).unwrap_err();
        assert_eq!(err.key, "template email/goal.html");
    }
}
