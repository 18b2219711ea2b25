//! The analysis pipeline: worker threads parse each file and run squawk's rules on it, while
//! the calling thread classifies the files in version order.

use super::*;
use std::sync::Mutex;

/// The stack of the threads that parse and classify. A deeply nested statement (a generated
/// 150,000-term `OR` chain, 20,000 nested parentheses) makes squawk's syntax tree as deep, and
/// building, walking and dropping it recurse once per level: the 8 MiB of a main thread overflow
/// (an abort, not an error). Stack memory is only committed as it is used, so reserving this
/// much costs nothing for ordinary files.
pub(super) const ANALYSIS_STACK: usize = 4 << 30;

/// Runs `f` on a thread with [`ANALYSIS_STACK`] of stack.
pub(super) fn with_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("cutover-analysis".into())
            .stack_size(ANALYSIS_STACK)
            .spawn_scoped(s, f)
            .expect("an analysis thread starts")
            .join()
            .expect("an analysis thread panicked")
    })
}

/// A parse tree, its parse errors when the worker read them, and where to send the tree back
/// once classified: the worker that built it frees it, so its memory goes back to that thread's
/// allocator arena (freeing it from another thread contends for the arena's lock).
pub(super) type Tree = (
    Parse<SourceFile>,
    Option<ParseErrors>,
    std::sync::mpsc::Sender<Parse<SourceFile>>,
);

/// Parse errors: offset and readable message.
pub(super) type ParseErrors = Vec<(usize, String)>;

/// How a worker hands one file's results to the classifying thread.
pub(super) struct Handoff {
    parse: std::sync::mpsc::Sender<Tree>,
    violations: std::sync::mpsc::Sender<Vec<Violation>>,
}

/// Where the classifying thread waits for one file's results.
pub(super) struct Pickup {
    parse: std::sync::mpsc::Receiver<Tree>,
    violations: std::sync::mpsc::Receiver<Vec<Violation>>,
}

/// Parses each of `files` and then runs squawk's rules on it ([`lint_file`], where `lint` says
/// so) on worker threads, taking the files in order; meanwhile calls `consume` on this thread
/// for each file in order, as soon as its parse is ready, with a function that waits for the
/// file's violations.
pub(super) fn pipeline(
    files: &[&MigrationFile],
    lint: impl Fn(&MigrationFile) -> bool + Sync,
    mut consume: impl FnMut(
        &MigrationFile,
        &Parse<SourceFile>,
        Option<ParseErrors>,
        &mut dyn FnMut() -> Vec<Violation>,
    ),
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::channel;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = threads.min(files.len());
    // A worker takes a file's handoff: if it panics, the senders drop, and the receiving end
    // here fails instead of waiting forever.
    let (handoffs, pickups) = channels(files.len());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            std::thread::Builder::new()
                .name("cutover-analysis".into())
                .stack_size(ANALYSIS_STACK)
                .spawn_scoped(s, || {
                    let (done_tx, done_rx) = channel::<Parse<SourceFile>>();
                    loop {
                        // Free the trees the classifying thread is done with.
                        while done_rx.try_recv().is_ok() {}
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else { break };
                        let Some(handoff) =
                            handoffs[i].lock().unwrap_or_else(|e| e.into_inner()).take()
                        else {
                            break;
                        };
                        let parse = SourceFile::parse(&file.text);
                        // With more files than workers, the classifying thread has the most to
                        // do: the workers also read the parse errors (a walk over the whole tree).
                        // With one file, the classifying thread reads them while a worker runs
                        // squawk's rules.
                        let errors = (files.len() > workers).then(|| parse_errors(&parse));
                        // A send fails only once the classifying thread has panicked; the
                        // scope reports that panic.
                        let _ = handoff.parse.send((parse.clone(), errors, done_tx.clone()));
                        let violations = if lint(file) {
                            lint_file(&parse, &file.text)
                        } else {
                            Vec::new()
                        };
                        let _ = handoff.violations.send(violations);
                    }
                    // The last trees: the channel closes once the classifying thread is done.
                    drop(done_tx);
                    for tree in done_rx {
                        drop(tree);
                    }
                })
                .expect("an analysis thread starts");
        }
        for (file, pickup) in files.iter().zip(pickups) {
            let (parse, errors, done) = pickup.parse.recv().expect("an analysis thread panicked");
            let mut violations = || {
                pickup
                    .violations
                    .recv()
                    .expect("an analysis thread panicked")
            };
            consume(file, &parse, errors, &mut violations);
            let _ = done.send(parse);
        }
    });
}

/// One handoff (for the workers) and one pickup (for the classifying thread) per file.
fn channels(n: usize) -> (Vec<Mutex<Option<Handoff>>>, Vec<Pickup>) {
    let mut handoffs: Vec<Mutex<Option<Handoff>>> = Vec::with_capacity(n);
    let mut pickups: Vec<Pickup> = Vec::with_capacity(n);
    for _ in 0..n {
        let (parse_tx, parse_rx) = std::sync::mpsc::channel();
        let (violations_tx, violations_rx) = std::sync::mpsc::channel();
        handoffs.push(Mutex::new(Some(Handoff {
            parse: parse_tx,
            violations: violations_tx,
        })));
        pickups.push(Pickup {
            parse: parse_rx,
            violations: violations_rx,
        });
    }
    (handoffs, pickups)
}

/// A file's parse errors. They come from a walk over the whole tree (squawk's validation).
pub(super) fn parse_errors(parse: &Parse<SourceFile>) -> ParseErrors {
    parse
        .errors()
        .iter()
        .map(|e| {
            (
                usize::from(e.range().start()),
                readable_parse_error(e.message()),
            )
        })
        .collect()
}

/// squawk's findings for a parsed file.
pub(super) fn lint_file(parse: &Parse<SourceFile>, text: &str) -> Vec<Violation> {
    let mut linter = Linter::with_rules(&[], SQUAWK_REPLACED);
    // cutover runs a file in one transaction unless a statement forbids it.
    linter.settings.assume_in_transaction = parse.tree().stmts().all(|s| transactional(&s));
    linter.lint(parse, text)
}
