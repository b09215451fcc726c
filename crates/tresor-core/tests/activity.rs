//! Issue 20, client counts in-process: one record per client and month, a client seen again in
//! the same month is not written again, and months older than the retention go when a new
//! month starts.

mod common;

use common::dev_core;
use tresor_core::activity::{add_months, month_start};

#[tokio::test]
async fn clients_are_recorded_once_a_month_and_old_months_are_pruned() {
    let t = dev_core().await;
    let u = t.core.unsealed().unwrap();
    let log = &u.activity;
    let route = ("auth/userpass/", "auth_userpass_1", "userpass");
    // 2022-03-15.
    let start = 1_647_302_400;
    assert!(log.record("ent-1", &[], route, start).await.unwrap());
    assert!(!log.record("ent-1", &[], route, start + 60).await.unwrap());
    assert!(
        log.record("", &["p".into()], route, start + 120)
            .await
            .unwrap()
    );
    // A month later: the same clients are new again for that month.
    let next = add_months(start, 1) + 10;
    assert!(log.record("ent-1", &[], route, next).await.unwrap());
    let months = log.months(start, next).await.unwrap();
    assert_eq!(months.len(), 2);
    assert_eq!(months[0].0, month_start(start));
    assert_eq!(months[0].1.len(), 2);
    assert_eq!(months[1].1.len(), 1);
    // 48 months (the default retention) after the second month, the first is 49 months old
    // and deleted; the second is kept.
    let later = add_months(next, 48) + 10;
    assert!(log.record("ent-2", &[], route, later).await.unwrap());
    let months = log.months(start, later).await.unwrap();
    let kept: Vec<i64> = months.iter().map(|(m, _)| *m).collect();
    assert_eq!(kept, vec![month_start(next), month_start(later)]);
    assert_eq!(log.oldest_month().await.unwrap(), Some(month_start(next)));
    // Turned off, nothing is recorded.
    let mut cfg = log.config();
    cfg.enabled = "disable".into();
    log.set_config(cfg).await.unwrap();
    assert!(!log.record("ent-3", &[], route, later).await.unwrap());
    assert_eq!(log.months(later, later).await.unwrap()[0].1.len(), 1);
}
