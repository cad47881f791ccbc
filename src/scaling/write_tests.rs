//! [`conditional`] against scripted API answers: what each answer leads to, how many requests
//! it sends and how many reads it makes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use super::*;

const WANTED: u32 = 7;

/// One case: where the write starts, the API's answer to each request (0 = stored), what a
/// read finds, and what the write must come to with how many requests and reads.
struct Case {
    name: &'static str,
    start_by_reading: bool,
    answers: Vec<u16>,
    read: Option<u32>,
    want: &'static str,
    sends: usize,
    reads: usize,
}

fn case(
    name: &'static str,
    answers: Vec<u16>,
    read: Option<u32>,
    want: &'static str,
    sends: usize,
    reads: usize,
) -> Case {
    Case {
        name,
        start_by_reading: false,
        answers,
        read,
        want,
        sends,
        reads,
    }
}

async fn run(c: &Case) -> (String, usize, usize) {
    let policy = RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };
    let answers = RefCell::new(c.answers.iter().copied().collect::<VecDeque<u16>>());
    let (sends, reads) = (RefCell::new(0), RefCell::new(0));
    let start = if c.start_by_reading {
        Start::ReadFirst
    } else {
        Start::With(Next::Send(WANTED))
    };
    let written = conditional(
        &policy,
        "test object",
        start,
        |r: u32| {
            *sends.borrow_mut() += 1;
            let answer = answers.borrow_mut().pop_front().expect("an answer for every request");
            async move {
                match answer {
                    0 => Ok(r),
                    code => Err(retry::api_error(code, "the API says no")),
                }
            }
        },
        || {
            *reads.borrow_mut() += 1;
            let found = c.read;
            async move { Ok(found) }
        },
        |current: Option<u32>| match current {
            None => Next::Nothing,
            Some(v) if v == WANTED => Next::Settled(v),
            Some(_) => Next::Send(WANTED),
        },
    )
    .await;
    let shown = match written {
        Ok(Written::Done(v)) => format!("done {v}"),
        Ok(Written::Nothing) => "nothing".to_string(),
        Ok(Written::Refused(m)) => format!("refused: {m}"),
        Err(e) => {
            assert!(
                std::error::Error::source(&e).is_some(),
                "{}: the API's error is kept",
                c.name
            );
            format!("failed: {e}")
        }
    };
    (shown, sends.into_inner(), reads.into_inner())
}

#[tokio::test]
async fn each_answer_is_handled_as_the_table_of_the_module_says() {
    let cases = [
        case("2xx: stored", vec![0], None, "done 7", 1, 0),
        case(
            "409, and the re-read shows our write committed",
            vec![409],
            Some(7),
            "done 7",
            1,
            1,
        ),
        case(
            "409, and the re-read shows it did not: sent again",
            vec![409, 0],
            Some(3),
            "done 7",
            2,
            1,
        ),
        case("409, and the object is gone", vec![409], None, "nothing", 1, 1),
        case(
            "503 then stored: sent again, no read",
            vec![503, 0],
            None,
            "done 7",
            2,
            0,
        ),
        case("429 then stored", vec![429, 0], None, "done 7", 2, 0),
        case(
            "403: refused for good",
            vec![403],
            None,
            "refused: the API says no (403)",
            1,
            0,
        ),
        case(
            "422: refused for good",
            vec![422],
            None,
            "refused: the API says no (422)",
            1,
            0,
        ),
        case("404: gone", vec![404], None, "nothing", 1, 0),
        case("400: a failure", vec![400], None, "failed: ", 1, 0),
        case(
            "503 every time: gives up after the attempts",
            vec![503, 503, 503],
            None,
            "(after 3 attempts)",
            3,
            0,
        ),
        Case {
            start_by_reading: true,
            ..case("read first: already as wanted", vec![], Some(7), "done 7", 0, 1)
        },
        Case {
            start_by_reading: true,
            ..case("read first: gone", vec![], None, "nothing", 0, 1)
        },
        Case {
            start_by_reading: true,
            ..case("read first: not yet", vec![0], Some(3), "done 7", 1, 1)
        },
    ];
    for c in &cases {
        let (shown, sends, reads) = run(c).await;
        assert!(shown.contains(c.want), "{}: {shown:?}", c.name);
        assert_eq!((sends, reads), (c.sends, c.reads), "{}: requests and reads", c.name);
    }
}
