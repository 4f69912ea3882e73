mod common;
use common::*;
use std::time::Duration;

#[test]
fn threads_use_python_then_another_thread_shuts_down() {
    within(Duration::from_secs(20), "smoke", || {
        initialize();
        run("import threading\ncounter = 0\nlock = threading.Lock()");
        let workers: Vec<_> = (0..4)
            .map(|i| {
                spawn(&format!("worker-{i}"), || {
                    for _ in 0..1000 {
                        run("with lock:\n    counter += 1");
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(eval_i64("counter"), 4000);
        let stopper = spawn("stopper", || shutdown(5000, 0));
        ok(stopper.join().unwrap());
    });
}
