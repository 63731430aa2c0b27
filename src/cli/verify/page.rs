//! `recheck verify --html`: a batch's rows as one self-contained page: the summary with
//! its intervals, then each record's verdict, faithfulness and claims with the quotes
//! that decided them. Everything from the records is escaped.

use std::fmt::Write;

use serde_json::Value;

use super::batch::shown_interval;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page for `rows` (in input order) and their `summary`, of batch run `batch`.
pub fn render(rows: &[Value], summary: &Value, batch: &str, source: &str) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>recheck verify</h1><p><code>{}</code>, batch run <code>{}</code>: {} records, {} failed.</p>\
         <table><tr><th>verified share (95% Wilson)</th><td>{}</td></tr>\
         <tr><th>mean faithfulness (95% bootstrap)</th><td>{}</td></tr></table>",
        esc(source),
        esc(batch),
        summary["records"],
        summary["failed"],
        shown_interval(&summary["verified_share"]),
        shown_interval(&summary["mean_faithfulness"]),
    );
    body.push_str("<table><tr><th>id</th><th>verified</th><th>faithfulness</th><th>claims</th></tr>");
    for row in rows {
        let id = row["id"].as_str().map_or_else(|| row["id"].to_string(), String::from);
        if let Some(error) = row["error"].as_str() {
            let _ = write!(body, "<tr class=\"error\"><td>{}</td><td colspan=\"3\">{}</td></tr>", esc(&id), esc(error));
            continue;
        }
        let faithfulness = row["faithfulness"].as_f64().map_or_else(|| "undefined".into(), |f| format!("{f:.2}"));
        let mut claims = String::new();
        for claim in row["claims"].as_array().into_iter().flatten() {
            let verdict = claim["verdict"].as_str().unwrap_or("");
            let _ = write!(
                claims,
                "<div class=\"{}\"><b>{}</b> {}",
                esc(verdict),
                esc(verdict),
                esc(claim["text"].as_str().unwrap_or(""))
            );
            for q in claim["quotes"].as_array().into_iter().flatten() {
                let _ = write!(
                    claims,
                    "<blockquote>context {} [{}..{}]: {}</blockquote>",
                    esc(&q["context"].to_string()),
                    q["start"],
                    q["end"],
                    esc(q["quote"].as_str().unwrap_or(""))
                );
            }
            claims.push_str("</div>");
        }
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{faithfulness}</td><td class=\"claims\">{claims}</td></tr>",
            esc(&id),
            esc(&row["verified"].to_string()),
        );
    }
    body.push_str("</table>");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>recheck verify {}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}\
         td.claims{{text-align:left}}.supported b{{color:#161}}.contradicted b{{color:#a11}}.unsupported b{{color:#a60}}\
         .error td{{color:#a11}}blockquote{{margin:2px 0 6px 1em;color:#555;font-size:90%}}</style></head>\
         <body>{body}</body></html>\n",
        esc(batch)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_cannot_become_markup() {
        let rows = vec![
            serde_json::json!({"id": "<b>x</b>", "verified": true, "faithfulness": 1.0,
                "claims": [{"text": "<script>alert(1)</script>", "verdict": "supported",
                    "quotes": [{"context": 0, "start": 0, "end": 3, "quote": "a&b"}]}]}),
            serde_json::json!({"id": "2", "line": 2, "error": "line 2 is not JSON"}),
        ];
        let page = render(&rows, &serde_json::json!({"records": 2, "failed": 1}), "b1", "r.jsonl");
        assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"));
        assert!(page.contains("a&amp;b") && page.contains("line 2 is not JSON"));
    }
}
