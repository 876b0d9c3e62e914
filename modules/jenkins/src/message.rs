//! The gist of an error answer: Jenkins and the Jetty in front of it answer errors with HTML
//! pages; a caller wants the one sentence on them, not the markup.

/// The longest message kept, in characters.
const MAX_CHARS: usize = 200;

/// A short plain-text message from an error answer's body, at most ~200 characters:
///
/// - HTML: the `<title>` when it says something (Jetty's `Error 403 No valid crumb was included
///   in the request`, less its `Error 403`), else the first `<p>` (Jenkins's own error page: title `Error [Jenkins]`,
///   message in a paragraph), else the first visible text;
/// - anything else: the first non-empty line.
pub(crate) fn short_message(body: &str) -> String {
    let body = body.trim();
    let text = if looks_like_html(body) {
        let page = without_code(body);
        element_text(&page, "title")
            .map(|t| without_status(&t).to_owned())
            .filter(|t| informative(t))
            .or_else(|| element_text(&page, "p").filter(|t| !t.is_empty()))
            .or_else(|| first_visible_text(&page))
            .unwrap_or_default()
    } else {
        body.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_owned()
    };
    truncate(&text)
}

fn looks_like_html(body: &str) -> bool {
    let head: String = body
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<title",
        "<p>",
        "<h1",
        "<h2",
    ]
    .iter()
    .any(|tag| head.contains(tag))
}

/// Jetty's title without its `Error 403 ` (the status is reported apart).
fn without_status(title: &str) -> &str {
    let Some(rest) = title.strip_prefix("Error ") else {
        return title;
    };
    let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
        message.trim_start()
    } else {
        title
    }
}

/// A title that names the error, not just the site (`Jenkins`, `Error [Jenkins]`).
fn informative(title: &str) -> bool {
    let bare = title.trim_end_matches("[Jenkins]").trim();
    !bare.is_empty()
        && !["jenkins", "error", "oops!", "dashboard"].contains(&bare.to_ascii_lowercase().as_str())
}

/// The text inside the first `<tag ...>...</tag>`, tags stripped, entities decoded, whitespace
/// collapsed.
fn element_text(html: &str, tag: &str) -> Option<String> {
    // ASCII lowercasing keeps every byte offset, so indexes into `lower` index `html`.
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let mut from = 0;
    let start = loop {
        let at = from + lower[from..].find(&open)?;
        let after = at + open.len();
        match lower.as_bytes().get(after) {
            Some(b'>') | Some(b' ') | Some(b'\t') | Some(b'\n') | Some(b'\r') | Some(b'/') => {
                break after + lower[after..].find('>')? + 1;
            }
            _ => from = after,
        }
    };
    let end = start
        + lower[start..]
            .find(&format!("</{tag}"))
            .unwrap_or(lower.len() - start);
    Some(collapse(&decode_entities(&strip_tags(&html[start..end]))))
}

/// The first non-empty run of text outside tags, after `<head>`.
fn first_visible_text(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let body = lower
        .find("</head>")
        .map_or(html, |at| &html[at + "</head>".len()..]);
    body.split('<')
        .map(|piece| piece.split_once('>').map_or(piece, |(_, text)| text))
        .map(|text| collapse(&decode_entities(text)))
        .find(|text| !text.is_empty())
}

/// The page without `<script>`, `<style>` and comments, whose text is never a message.
fn without_code(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    loop {
        let lower = rest.to_ascii_lowercase();
        let next = [
            ("<script", "</script>"),
            ("<style", "</style>"),
            ("<!--", "-->"),
        ]
        .iter()
        .filter_map(|(open, close)| lower.find(open).map(|at| (at, *close)))
        .min_by_key(|(at, _)| *at);
        let Some((at, close)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        match lower[at..].find(close) {
            Some(end) => rest = &rest[at + end + close.len()..],
            None => return out,
        }
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|end| *end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jettys_error_page_gives_its_title() {
        let page = "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n\
                    <title>Error 403 No valid crumb was included in the request</title>\n</head>\n\
                    <body><h2>HTTP ERROR 403 No valid crumb was included in the request</h2>\n\
                    <table><tr><th>URI:</th><td>/job/x/build</td></tr></table></body></html>";
        assert_eq!(
            short_message(page),
            "No valid crumb was included in the request"
        );
        assert_eq!(
            short_message("<html><title>Error 500 </title><p>boom</p></html>"),
            "boom"
        );
        assert_eq!(
            short_message("<html><title>Error 12 things</title></html>"),
            "Error 12 things"
        );
    }

    #[test]
    fn jenkins_error_page_gives_its_paragraph() {
        let page = "<!DOCTYPE html><html><head><title>Error [Jenkins]</title>\
                    <script>var x = '<p>not this</p>';</script></head><body>\
                    <div id=\"page-header\"><a href=\"/\">Jenkins</a></div>\
                    <h1>Error</h1><p>The name &#8220;b&#8221; is already in use &amp; taken.</p></body></html>";
        assert_eq!(
            short_message(page),
            "The name \u{201c}b\u{201d} is already in use & taken."
        );
    }

    #[test]
    fn without_title_or_paragraph_the_first_visible_text() {
        let page = "<html><head><style>h1{}</style></head><body>\n  <script>alert(1)</script>\
                    <div>  Oops:\n  disk   full </div><div>second</div></body></html>";
        assert_eq!(short_message(page), "Oops: disk full");
        assert_eq!(
            short_message("<body><h1>Something &lt;broke&gt;</h1></body>"),
            "Something <broke>"
        );
    }

    #[test]
    fn plain_text_gives_its_first_line() {
        assert_eq!(
            short_message("\n\n  Invalid password/token for user: admin \nmore"),
            "Invalid password/token for user: admin"
        );
        assert_eq!(short_message(""), "");
        assert_eq!(short_message("a < b & c"), "a < b & c");
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(1000);
        let short = short_message(&long);
        assert_eq!(short.chars().count(), 200);
        assert!(short.ends_with('…'));
        let page = format!("<html><title>{}</title></html>", "é".repeat(300));
        assert_eq!(short_message(&page).chars().count(), 200);
    }

    #[test]
    fn entities_decode_and_bad_ones_stay() {
        assert_eq!(
            decode_entities("&#x41;&#66;&nbsp;&bogus; & &;"),
            "AB &bogus; & &;"
        );
    }
}
