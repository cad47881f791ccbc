use std::collections::VecDeque;
use std::time::Duration;

use super::*;
use crate::scaling::kinds::Kind;
use crate::scaling::objects::Meta;

fn slim(name: &str) -> Slim {
    Slim {
        metadata: Meta {
            name: name.into(),
            ..Meta::default()
        },
        ..Slim::default()
    }
}

/// (the token expected, the items handed over, then the next token or an HTTP code; 0: the
/// connection reset).
type Step = (
    Option<&'static str>,
    Vec<&'static str>,
    std::result::Result<Option<&'static str>, u16>,
);

/// Pages answered from a script: (the token expected, items handed over, then the answer).
struct Script {
    steps: VecDeque<Step>,
    asked: Vec<Option<String>>,
}

impl Pages for Script {
    async fn page(
        &mut self,
        token: Option<&str>,
        each: &mut (dyn FnMut(Slim) + Send),
    ) -> std::result::Result<Option<String>, kube::Error> {
        self.asked.push(token.map(str::to_string));
        let (want, items, answer) = self.steps.pop_front().expect("a page more than scripted");
        assert_eq!(token, want, "asked for the wrong page");
        items.into_iter().for_each(|n| each(slim(n)));
        match answer {
            Ok(next) => Ok(next.map(str::to_string)),
            Err(0) => Err(kube::Error::ReadEvents(std::io::Error::other("connection reset"))),
            Err(code) => Err(crate::scaling::retry::api_error(code, "m")),
        }
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 5,
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
    }
}

/// Runs the script; the names as the consumer ends up holding them, and the events seen.
async fn run(steps: Vec<Step>) -> (Result<()>, Vec<String>, usize, Vec<Option<String>>) {
    let mut script = Script {
        steps: steps.into(),
        asked: vec![],
    };
    let (mut held, mut restarts) = (Vec::new(), 0);
    let r = list_all(&mut script, &policy(), "list Deployment", |l| match l {
        Listed::Item(o) => held.push(o.metadata.name),
        Listed::Restart => {
            restarts += 1;
            held.clear();
        }
    })
    .await;
    assert!(
        script.steps.is_empty(),
        "pages scripted but not asked: {:?}",
        script.steps
    );
    (r, held, restarts, script.asked)
}

#[tokio::test]
async fn an_expired_continue_token_starts_the_list_again_from_the_first_page() {
    let (r, held, restarts, asked) = run(vec![
        (None, vec!["a", "b"], Ok(Some("t1"))),
        (Some("t1"), vec![], Err(410)),
        (None, vec!["a", "b2"], Ok(Some("t2"))),
        (Some("t2"), vec!["c"], Ok(None)),
    ])
    .await;
    r.unwrap();
    assert_eq!(held, ["a", "b2", "c"], "only the second listing is kept");
    assert_eq!(restarts, 1);
    assert_eq!(asked, [None, Some("t1".into()), None, Some("t2".into())]);
}

#[tokio::test]
async fn a_token_that_keeps_expiring_fails_the_list_after_three_restarts() {
    let mut steps = vec![];
    for _ in 0..=MAX_RESTARTS {
        steps.push((None, vec!["a"], Ok(Some("t"))));
        steps.push((Some("t"), vec![], Err(410)));
    }
    let (r, _, restarts, asked) = run(steps).await;
    assert_eq!(restarts, MAX_RESTARTS as usize);
    assert_eq!(asked.len(), 8);
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Failed { .. }), "{e:?}");
    assert_eq!(e.exit(), crate::error::Exit::Failed);
    assert!(e.to_string().contains("expired 4 times"), "{e}");
}

#[tokio::test]
async fn a_transient_failure_retries_the_same_page_and_a_page_cut_short_starts_again() {
    let (r, held, restarts, _) = run(vec![
        (None, vec!["a"], Ok(Some("t1"))),
        (Some("t1"), vec![], Err(503)),
        (Some("t1"), vec!["b"], Ok(None)),
    ])
    .await;
    r.unwrap();
    assert_eq!((held, restarts), (vec!["a".to_string(), "b".into()], 0));

    let (r, held, restarts, _) = run(vec![
        (None, vec!["a"], Ok(Some("t1"))),
        (Some("t1"), vec!["b"], Err(0)),
        (None, vec!["a"], Ok(Some("t1"))),
        (Some("t1"), vec!["b", "c"], Ok(None)),
    ])
    .await;
    r.unwrap();
    assert_eq!(held, ["a", "b", "c"], "no item twice");
    assert_eq!(restarts, 1);
}

#[tokio::test]
async fn other_answers_end_the_list_at_once() {
    let (r, _, _, asked) = run(vec![(None, vec![], Err(403))]).await;
    assert!(matches!(r, Err(Error::Kube(kube::Error::Api(s))) if s.code == 403));
    assert_eq!(asked.len(), 1);
    let mut steps: Vec<_> = (0..5).map(|_| (None, vec![], Err(500))).collect();
    steps.truncate(5);
    let (r, _, _, asked) = run(steps).await;
    assert!(r.is_err());
    assert_eq!(asked.len(), 5, "the policy's attempts, no more");
}

#[test]
fn the_first_page_asks_the_watch_cache_and_later_ones_only_continue() {
    let first = page_uri(Kind::DEPLOYMENT.api_resource(), Some("team in (a,b)"), 500, None).unwrap();
    assert!(first.starts_with("/apis/apps/v1/deployments?"), "{first}");
    assert!(first.contains("limit=500"), "{first}");
    assert!(first.contains("labelSelector=team+in+%28a%2Cb%29"), "{first}");
    assert!(
        first.ends_with("&resourceVersion=0&resourceVersionMatch=NotOlderThan"),
        "{first}"
    );
    let next = page_uri(&crate::scaling::objects::NAMESPACE, None, 500, Some("abc")).unwrap();
    assert_eq!(next, "/api/v1/namespaces?&limit=500&continue=abc");
}

const LIST: &str = r#"{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"7","continue":"tok\"en"},
 "items":[{"metadata":{"name":"a","annotations":{"x":"} ] { [ \" \\"}},"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"c","args":["[","{"]}]}}}},
   {"metadata":{"name":"b\u00e9 ü"},"spec":{}} , {"metadata":{"name":"c"},"items":[{"metadata":{"name":"nested"}}]}],
 "trailer":{"items":[{"metadata":{"name":"not-an-item"}}]}}"#;

fn split(body: &[u8], chunk: usize) -> serde_json::Result<(Vec<String>, Option<String>)> {
    let mut s = ListSplitter::default();
    let mut names = vec![];
    for part in body.chunks(chunk) {
        s.feed(part, &mut |item| {
            let o: Slim = serde_json::from_slice(item)?;
            names.push(o.metadata.name);
            Ok(())
        })?;
    }
    Ok((names, s.finish()?))
}

#[test]
fn the_splitter_hands_over_each_item_whatever_the_chunks() {
    let whole: serde_json::Value = serde_json::from_str(LIST).expect("the test list is JSON");
    let want: Vec<String> = whole["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(want, ["a", "bé ü", "c"]);
    for chunk in (1..=9).chain([64, LIST.len()]) {
        let (names, token) = split(LIST.as_bytes(), chunk).unwrap();
        assert_eq!(names, want, "chunks of {chunk}");
        assert_eq!(token.as_deref(), Some("tok\"en"), "chunks of {chunk}");
    }
    let (names, token) = split(br#"{"metadata":{"continue":""},"items":null}"#, 3).unwrap();
    assert!(names.is_empty());
    assert_eq!(token, None);
    // The metadata after the items is found too (any key order).
    let (names, token) = split(
        br#"{"items":[{"metadata":{"name":"x"}}],"metadata":{"continue":"n"}}"#,
        2,
    )
    .unwrap();
    assert_eq!((names, token.as_deref()), (vec!["x".to_string()], Some("n")));
}

#[test]
fn a_body_cut_short_is_an_error() {
    for cut in [0, 1, LIST.len() / 2, LIST.len() - 1] {
        assert!(split(&LIST.as_bytes()[..cut], 7).is_err(), "cut at {cut}");
    }
    assert!(split(b"{}}", 1).is_err());
}
