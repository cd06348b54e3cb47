//! `touchpoint runs`: the run history as a table, or one run in full with the records it
//! rejected.

use std::fmt::Write;
use std::process::ExitCode;

use serde_json::json;

use super::Output;
use super::RunsArgs;
use crate::runs::{RejectionRecord, RunRecord};
use crate::settings::Settings;
use crate::store::{Store, timestamp};

pub async fn print(settings: Settings, args: &RunsArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = Store::open_read_only(&settings.store).await? else {
        anyhow::bail!(
            "there is no store at {} yet: no run has happened",
            settings.store.path.display()
        );
    };
    if let Some(run_id) = &args.run {
        return print_one(&store, run_id, args.output).await;
    }
    let runs = store.recent_runs(args.last).await?;
    match args.output {
        Output::Json => super::write_json(&runs)?,
        Output::Text => super::emit(&table(&runs))?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn print_one(store: &Store, run_id: &str, output: Output) -> anyhow::Result<ExitCode> {
    let Some(run) = store.run_record(run_id).await? else {
        anyhow::bail!("there is no run {run_id}; `touchpoint runs` lists them");
    };
    let rejected = store.run_rejections(run_id).await?;
    match output {
        Output::Json => super::write_json(&json!({ "run": run, "rejected": rejected }))?,
        Output::Text => super::emit(&detail(&run, &rejected))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per run, newest first.
fn table(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "no runs yet\n".to_owned();
    }
    let unknown_end = runs.iter().any(|run| ended(run) == "unknown");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<29} {:<20} {:<20} {:>9} {:<11} {:>7} {:>7} {:>7} {:>6} {:>5} {:>8}  REASON",
        "RUN",
        "STARTED",
        "ENDED",
        "DURATION",
        "STATUS",
        "SCORED",
        "CHANGED",
        "WRITTEN",
        "EMAILS",
        "TASKS",
        "REJECTED"
    );
    for run in runs {
        let count = |name: &str| run.count(name).map_or("-".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{:<29} {:<20} {:<20} {:>9} {:<11} {:>7} {:>7} {:>7} {:>6} {:>5} {:>8}  {}",
            run.id,
            timestamp(run.started_at),
            ended(run),
            duration(run.duration_ms),
            run.status,
            count("scored"),
            count("changed"),
            count("written"),
            count("surveys_sent"),
            count("tasks_opened"),
            count("rejected"),
            run.reason.as_deref().unwrap_or(""),
        );
    }
    let _ = writeln!(
        out,
        "\nWRITTEN: scores the CRM accepted; EMAILS: survey emails sent; TASKS: tasks opened \
         (`touchpoint runs --run ID` has every count)."
    );
    if unknown_end {
        let _ = writeln!(
            out,
            "\nENDED unknown: the process died during the run; when is not known, and the \
             reason says when another instance found it and marked it interrupted."
        );
    }
    out
}

fn detail(run: &RunRecord, rejected: &[RejectionRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {} ({})", run.id, run.command);
    let _ = writeln!(out, "  status: {}", run.status);
    if let Some(reason) = &run.reason {
        let _ = writeln!(out, "  reason: {reason}");
    }
    let _ = writeln!(out, "  started: {}", timestamp(run.started_at));
    let _ = writeln!(out, "  ended: {}", ended(run));
    let _ = writeln!(out, "  duration: {}", duration(run.duration_ms));
    let _ = writeln!(out, "  scored as of: {}", run.as_of);
    let _ = writeln!(out, "  source: {}", run.source);
    if let Some(pulled) = run.accounts_pulled {
        let _ = writeln!(out, "  accounts pulled: {pulled}");
    }
    let mut counts = run.summary.clone();
    let warnings = counts
        .as_object_mut()
        .and_then(|fields| fields.remove("warnings"));
    if let Some(fields) = counts.as_object().filter(|fields| !fields.is_empty()) {
        let _ = writeln!(out, "  counts:");
        for (name, value) in fields.iter().filter(|(_, value)| !value.is_null()) {
            let _ = writeln!(out, "    {}: {}", name.replace('_', " "), count_text(value));
        }
    }
    let warnings = warnings.as_ref().and_then(serde_json::Value::as_array);
    if let Some(warnings) = warnings.filter(|list| !list.is_empty()) {
        let _ = writeln!(out, "\ncheck the data first: {}", warnings.len());
        for warning in warnings {
            let _ = writeln!(out, "  ! {}", warning.as_str().unwrap_or_default());
        }
    }
    let _ = writeln!(out, "\nrejected records: {}", rejected.len());
    for record in rejected {
        let _ = writeln!(
            out,
            "  {} {} (account {}): {}",
            record.dataset,
            record.record_id.as_deref().unwrap_or("?"),
            record.account_id.as_deref().unwrap_or("?"),
            record.reason
        );
    }
    out
}

/// A count as a person reads it: `865` or, for a group, `green 865, yellow 478`.
fn count_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(parts) => parts
            .iter()
            .map(|(name, part)| format!("{name} {}", count_text(part)))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// When a run ended: `-` while it runs, `unknown` for a run whose process died (the reason
/// says when that was found), which has no honest end time to show.
fn ended(run: &RunRecord) -> String {
    match run.finished_at {
        Some(at) => timestamp(at),
        None if run.status == "interrupted" => "unknown".to_owned(),
        None => "-".to_owned(),
    }
}

fn duration(ms: Option<i64>) -> String {
    match ms {
        None => "-".to_owned(),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn one_run_lists_its_data_warnings_apart_from_its_counts() {
        let warning = "accounts.csv: 1 row(s) repeat the id of an earlier row";
        let run = RunRecord {
            id: "run-1".to_owned(),
            command: "cycle".to_owned(),
            started_at: Utc::now(),
            finished_at: None,
            duration_ms: None,
            as_of: "2025-01-01T00:00:00Z".to_owned(),
            status: "partial".to_owned(),
            reason: None,
            source: "CSV book in book".to_owned(),
            accounts_pulled: Some(5),
            summary: json!({
                "scored": 4,
                "bands": { "green": 3, "red": 1 },
                "written": null,
                "warnings": [warning],
            }),
        };

        let text = detail(&run, &[]);

        assert!(
            text.contains("  counts:\n    bands: green 3, red 1\n    scored: 4\n"),
            "{text}"
        );
        assert!(
            !text.contains("written"),
            "a count not taken is left out: {text}"
        );
        assert!(
            text.contains(&format!("check the data first: 1\n  ! {warning}\n")),
            "{text}"
        );
    }

    #[test]
    fn durations_read_as_seconds_then_minutes() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(1_260)), "1.3s");
        assert_eq!(duration(Some(754_000)), "12m34s");
    }
}
