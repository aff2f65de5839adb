//! Lanes: tests of one test binary that must not run beside certain others.
//!
//! `cargo test` runs the tests of one binary in parallel, and test binaries one after another.
//! A suite merged into one binary keeps what separate binaries gave it by having each test enter
//! a lane first: tests in the same lane run together, tests in different lanes never at the same
//! time. A suite puts its load, crash and clock tests in lanes of their own and everything else
//! in one shared lane.

use std::sync::{Condvar, Mutex, PoisonError};

/// A lane's name; tests that name the same lane may run at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane(pub &'static str);

/// The lane now open and how many tests are in it.
#[derive(Debug, Default)]
struct Road {
    open: Option<Lane>,
    inside: usize,
}

static ROAD: Mutex<Road> = Mutex::new(Road {
    open: None,
    inside: 0,
});
static CHANGED: Condvar = Condvar::new();

/// A test's place in its lane, held until the test ends (dropped on panic too).
#[derive(Debug)]
#[must_use = "the lane is left when this is dropped"]
pub struct InLane(());

/// Waits until `lane` is the open one (or none is), then enters it.
pub fn lane(lane: Lane) -> InLane {
    // A test that panicked in its lane poisons nothing that matters: the counts stay right,
    // because leaving happens in Drop.
    let mut road = ROAD.lock().unwrap_or_else(PoisonError::into_inner);
    while road.open.is_some_and(|open| open != lane) {
        road = CHANGED.wait(road).unwrap_or_else(PoisonError::into_inner);
    }
    road.open = Some(lane);
    road.inside += 1;
    InLane(())
}

impl Drop for InLane {
    fn drop(&mut self) {
        let mut road = ROAD.lock().unwrap_or_else(PoisonError::into_inner);
        road.inside -= 1;
        if road.inside == 0 {
            road.open = None;
            CHANGED.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    const HEAVY: Lane = Lane("heavy");
    const LIGHT: Lane = Lane("light");

    #[test]
    fn tests_in_different_lanes_never_overlap_and_one_lane_shares() {
        let heavy_inside = Arc::new(AtomicUsize::new(0));
        let light_inside = Arc::new(AtomicUsize::new(0));
        let most_light_together = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let (heavy, light, most) = (
                    heavy_inside.clone(),
                    light_inside.clone(),
                    most_light_together.clone(),
                );
                std::thread::spawn(move || {
                    let (mine, other) = if i % 3 == 0 {
                        (HEAVY, &light)
                    } else {
                        (LIGHT, &heavy)
                    };
                    let _in = lane(mine);
                    let counter = if mine == HEAVY { &heavy } else { &light };
                    let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    if mine == LIGHT {
                        most.fetch_max(now, Ordering::SeqCst);
                    }
                    assert_eq!(other.load(Ordering::SeqCst), 0, "two lanes open at once");
                    std::thread::sleep(Duration::from_millis(30));
                    assert_eq!(other.load(Ordering::SeqCst), 0, "two lanes open at once");
                    counter.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(most_light_together.load(Ordering::SeqCst) >= 1);
    }
}
