//! The learning side end to end (real NATS + PostgreSQL, own namespace):
//! cards, FSRS-6 reviews, idempotent and stale submissions, owner
//! isolation, audit replay as of an instant, the replay matching the read
//! model, and study statistics.

use mnemo_api::learning::convert;
use mnemo_domain::learn::learner::{card_differences, stats_differences};
use mnemo_domain::learn::{CardState, Fsrs, LearnerState, Rating, Recorded, Schedule, Scheduler};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::audit_service_client::AuditServiceClient;
use mnemo_proto::v1::learning_service_client::LearningServiceClient;
use mnemo_tests::rebuild_watch::{rebuild_in_small_batches, schema_exists, RowCounts};
use mnemo_tests::TestEnv;
use time::OffsetDateTime;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Clone)]
struct Bearer(String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let v = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| tonic::Status::internal("bad token"))?;
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    }
}

type Learning = LearningServiceClient<InterceptedService<Channel, Bearer>>;
type Audit = AuditServiceClient<InterceptedService<Channel, Bearer>>;

fn token(env: &TestEnv, owner: &str, admin: bool) -> String {
    env.auth
        .issue(&mnemo_domain::OwnerId::new(owner).unwrap(), 3600, admin)
        .unwrap()
}

async fn learning(env: &TestEnv, owner: &str) -> Learning {
    LearningServiceClient::with_interceptor(env.channel().await, Bearer(token(env, owner, false)))
}

async fn audit(env: &TestEnv, owner: &str, admin: bool) -> Audit {
    AuditServiceClient::with_interceptor(env.channel().await, Bearer(token(env, owner, admin)))
}

fn ts(t: OffsetDateTime) -> prost_types::Timestamp {
    mnemo_api::convert::timestamp(t)
}

fn at(t: &Option<prost_types::Timestamp>) -> OffsetDateTime {
    let t = t.as_ref().expect("timestamp");
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
    )
    .unwrap()
}

async fn create_card(c: &mut Learning, front: &str) -> pb::CardAccepted {
    c.create_card(pb::CreateCardRequest {
        card_id: String::new(),
        deck: "biology".into(),
        front: front.into(),
        back: "an answer".into(),
        source: Some(pb::LearningCardSource {
            document_id: uuid::Uuid::now_v7().to_string(),
            chunk_id: "chunk-1".into(),
            page: 3,
        }),
    })
    .await
    .unwrap()
    .into_inner()
}

fn review(
    card_id: &str,
    review_id: u128,
    rating: u32,
    t: OffsetDateTime,
) -> pb::SubmitReviewRequest {
    pb::SubmitReviewRequest {
        card_id: card_id.into(),
        review_id: uuid::Uuid::from_u128(review_id).to_string(),
        rating,
        reviewed_at: Some(ts(t)),
    }
}

/// The learner's history through the audit stream, as the fold's input.
async fn replay(client: &mut Audit, owner: &str) -> Result<Vec<Recorded>, tonic::Status> {
    let mut stream = client
        .replay_learning_history(pb::ReplayLearningHistoryRequest {
            owner: owner.into(),
            from: None,
            until: None,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    let mut last = 0;
    while let Some(e) = stream.message().await? {
        assert!(e.sequence >= last, "events come in stream order");
        last = e.sequence;
        if let Some(r) = convert::recorded_from_wire(&e).unwrap() {
            out.push(r);
        }
    }
    Ok(out)
}

/// A connection to the read models once the learning runner has folded
/// everything through `sequence`.
async fn read_model_through(env: &TestEnv, sequence: u64) -> tokio_postgres::Client {
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    let reached = mnemo_projector::learning::wait_for(
        &db,
        &env.ns,
        sequence,
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(
        reached >= sequence,
        "the learning runner stopped at {reached}"
    );
    db
}

fn schedule_of(s: &Option<pb::LearningSchedule>) -> Schedule {
    convert::schedule_from_wire(s.as_ref().expect("schedule")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_follow_fsrs_are_idempotent_and_replay_matches_the_read_model() {
    let env = TestEnv::start().await;
    let mut alice = learning(&env, "alice").await;
    let created = create_card(&mut alice, "What makes ATP?").await;
    let card = created.card.clone().unwrap();
    let card_id = card.card_id.clone();
    let created_at = at(&card.created_at);

    // Listed and due at once, once the read model has the creation.
    let listed = alice
        .list_cards(pb::ListCardsRequest {
            min_sequence: created.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.sequence >= created.sequence);
    assert_eq!(listed.cards.len(), 1);
    assert_eq!(listed.cards[0].source.as_ref().unwrap().page, 3);
    let due = alice
        .due_cards(pb::DueCardsRequest {
            min_sequence: created.sequence,
            limit: 10,
            now: Some(ts(created_at)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(due.cards.len(), 1);

    // Three reviews on days of their own; each schedule is FSRS-6's.
    let day1 = (created_at.date() + time::Duration::days(1))
        .with_hms(10, 0, 0)
        .unwrap()
        .assume_utc();
    let (t1, t2, t3) = (
        day1,
        day1 + time::Duration::days(4),
        day1 + time::Duration::days(5),
    );
    let fsrs = Fsrs::default();
    let mut expected = Schedule::new_card(created_at);
    let mut responses = Vec::new();
    for (n, (rating, t)) in [(Rating::Easy, t1), (Rating::Good, t2), (Rating::Again, t3)]
        .into_iter()
        .enumerate()
    {
        let r = alice
            .submit_review(review(&card_id, n as u128 + 1, rating.number() as u32, t))
            .await
            .unwrap()
            .into_inner();
        expected = fsrs.review(&expected, rating, t);
        assert_eq!(schedule_of(&r.schedule), expected, "review {}", n + 1);
        assert!(!r.duplicate);
        responses.push(r);
    }
    assert_eq!(expected.state, CardState::Relearning);

    // The same submission again: nothing appended, nothing double-counted.
    let again = alice
        .submit_review(review(&card_id, 3, 1, t3))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.sequence, responses[2].sequence);
    // A review older than the last one is refused, with the reason.
    let stale = alice
        .submit_review(review(&card_id, 9, 3, t2))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    assert!(
        stale.message().contains("stale review"),
        "{}",
        stale.message()
    );
    let bad = alice
        .submit_review(review(&card_id, 10, 7, t3))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // Not due before the relearning step is over, due after it.
    let last_seq = responses[2].sequence;
    let due_at = |now: OffsetDateTime| pb::DueCardsRequest {
        min_sequence: last_seq,
        limit: 10,
        now: Some(ts(now)),
    };
    let soon = alice
        .due_cards(due_at(t3 + time::Duration::minutes(1)))
        .await
        .unwrap();
    assert!(soon.into_inner().cards.is_empty());
    let later = alice.due_cards(due_at(expected.due)).await.unwrap();
    assert_eq!(later.into_inner().cards[0].reviews, 3);

    // Study stats: Easy on a learning card (not counted for retention),
    // then Good and Again on a card in review: retention 1/2; 3 reviews
    // over 6 days; streak of 2 (day 5 and day 6).
    let now = t3 + time::Duration::hours(2);
    let stats = alice
        .study_stats(pb::StudyStatsRequest {
            min_sequence: last_seq,
            now: Some(ts(now)),
            owner: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.reviews, 3);
    assert_eq!(
        (stats.review_state_reviews, stats.review_state_recalled),
        (2, 1)
    );
    assert_eq!(stats.retention, Some(0.5));
    assert_eq!(stats.reviews_per_day, 0.5);
    assert_eq!(
        (
            stats.days_studied,
            stats.current_streak_days,
            stats.reviews_today
        ),
        (3, 2, 1)
    );

    // Replay: as of an instant between the first two reviews' recording,
    // the card has the first review's schedule; as of now, exactly the read
    // model's cards and stats.
    let mut auditor = audit(&env, "alice", false).await;
    let events = replay(&mut auditor, "").await.unwrap();
    let reviews: Vec<&Recorded> = events
        .iter()
        .filter(|r| {
            matches!(
                &r.event,
                mnemo_domain::learn::LearnerEvent::Card {
                    event: mnemo_domain::learn::CardEvent::CardReviewed { .. },
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        reviews.len(),
        3,
        "the duplicate and the refused reviews left no event"
    );
    let between = reviews[0].occurred_at + (reviews[1].occurred_at - reviews[0].occurred_at) / 2;
    let then = LearnerState::as_of(&events, between);
    let card_uuid = uuid::Uuid::parse_str(&card_id).unwrap();
    assert_eq!(
        then.cards[&card_uuid].schedule,
        schedule_of(&responses[0].schedule)
    );
    assert_eq!(then.cards[&card_uuid].reviews, 1);

    let rebuilt = LearnerState::as_of(&events, OffsetDateTime::now_utc());
    let read = alice
        .list_cards(pb::ListCardsRequest {
            min_sequence: rebuilt.last_sequence,
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let read: Vec<_> = read
        .cards
        .iter()
        .map(|c| convert::card_from_wire(c).unwrap())
        .collect();
    assert_eq!(
        card_differences(&rebuilt.cards, &read),
        Vec::<String>::new()
    );
    assert_eq!(
        stats_differences(&rebuilt.stats(now), &convert::stats_from_wire(&stats)),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owner_can_neither_see_touch_nor_replay_a_learner() {
    let env = TestEnv::start().await;
    let mut alice = learning(&env, "alice").await;
    let mut bob = learning(&env, "alice.>").await;
    let created = create_card(&mut alice, "Alice's card").await;
    let card_id = created.card.unwrap().card_id;
    let topic = alice
        .create_topic(pb::CreateTopicRequest {
            topic_id: String::new(),
            name: "Cell biology".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let session = alice
        .start_session(pb::StartSessionRequest {
            topic_id: topic.topic_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ended = alice
        .end_session(pb::EndSessionRequest {
            session_id: session.session_id.clone(),
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ended.ended_at.is_some());

    let listed = bob
        .list_cards(pb::ListCardsRequest {
            min_sequence: ended.sequence,
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.cards.is_empty(), "{listed:?}");
    let err = bob
        .submit_review(review(&card_id, 1, 3, OffsetDateTime::now_utc()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = bob
        .list_cards(pb::ListCardsRequest {
            owner: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    let mut bob_audit = audit(&env, "alice.>", false).await;
    let err = replay(&mut bob_audit, "alice").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(replay(&mut bob_audit, "").await.unwrap().is_empty());

    // An admin may replay alice: card, topic and session, all hers.
    let mut admin = audit(&env, "auditor", true).await;
    let events = replay(&mut admin, "alice").await.unwrap();
    let state = LearnerState::as_of(&events, OffsetDateTime::now_utc());
    assert_eq!(state.cards.len(), 1);
    assert_eq!(state.topics.len(), 1);
    assert_eq!(state.sessions.len(), 1);
    let bad = admin
        .replay_learning_history(pb::ReplayLearningHistoryRequest {
            owner: String::new(),
            from: Some(ts(OffsetDateTime::now_utc())),
            until: Some(ts(OffsetDateTime::now_utc() - time::Duration::hours(1))),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_of_the_learning_read_model_swaps_in_the_same_rows() {
    let env = TestEnv::start().await;
    // Two learners: cards, reviews, a topic and a session each.
    let mut last = 0;
    for owner in ["alice", "bob"] {
        let mut c = learning(&env, owner).await;
        for n in 0..3 {
            let created = create_card(&mut c, &format!("{owner}'s card {n}")).await;
            let card = created.card.unwrap();
            let t = at(&card.created_at) + time::Duration::days(1);
            let r = c
                .submit_review(review(&card.card_id, n + 1, 3, t))
                .await
                .unwrap()
                .into_inner();
            last = last.max(r.sequence);
        }
        let topic = c
            .create_topic(pb::CreateTopicRequest {
                topic_id: String::new(),
                name: format!("{owner}'s topic"),
            })
            .await
            .unwrap()
            .into_inner();
        let session = c
            .start_session(pb::StartSessionRequest {
                topic_id: topic.topic_id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        last = last.max(session.sequence);
    }
    let db = read_model_through(&env, last).await;
    let before = mnemo_projector::checksum::checksums(&db).await.unwrap();
    let cards_before = before
        .iter()
        .find(|s| s.table == "learning_cards")
        .unwrap()
        .rows;
    assert_eq!(cards_before, 6);

    // A reader counts cards all through the rebuild: always all of them.
    let reader = RowCounts::start(db, "learning_cards");
    let (report, progress) =
        rebuild_in_small_batches(&env.bus, mnemo_projector::Projection::Learning).await;
    assert_eq!(
        reader.stop().await,
        vec![cards_before as i64],
        "a query saw a partial table"
    );
    assert_eq!(report.versions, vec![("learning".to_owned(), 2)]);
    // 2 learners × (3 × (created + reviewed) + topic + session) = 16 events.
    assert_eq!(report.progress.events, 16, "{:?}", report.progress);
    assert!(
        progress.len() > 2 && progress.windows(2).all(|w| w[0] <= w[1]),
        "{progress:?}"
    );

    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    assert_eq!(
        mnemo_projector::checksum::checksums(&db).await.unwrap(),
        before
    );
    let scratch =
        mnemo_projector::rebuild::scratch_schema_for(&env.ns, mnemo_projector::Feed::Learning);
    assert!(
        !schema_exists(&db, &scratch).await,
        "the scratch schema is dropped after the swap"
    );
    // The live learning runner writes into the new version.
    let mut alice = learning(&env, "alice").await;
    let late = create_card(&mut alice, "A late card").await;
    let listed = alice
        .list_cards(pb::ListCardsRequest {
            min_sequence: late.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cards.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learning_dead_letter_is_folded_in_by_a_rebuild_once_its_event_reads() {
    use mnemo_projector::learning::dead_letters::{self, Kept};
    use mnemo_projector::learning::DLQ_SERVICE;
    let env = TestEnv::start().await;
    let mut c = learning(&env, "alice").await;
    let skipped = create_card(&mut c, "a card the runner once could not read").await;
    // Garbage on a learning subject: the runner dead-letters it, goes on.
    let subject = format!(
        "{}.alice.card.0190aaaa-0000-7000-8000-000000000000",
        env.ns.events_of("learn")
    );
    let garbage = env.publish_garbage(subject).await;
    let after = create_card(&mut c, "a card after it").await;
    let db = read_model_through(&env, after.sequence).await;
    // The first card as an older build left it: stepped over (no row) and
    // dead-lettered; this build reads its event.
    let card_id: uuid::Uuid = skipped.card.unwrap().card_id.parse().unwrap();
    let removed = db
        .execute("DELETE FROM learning_cards WHERE card_id = $1", &[&card_id])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let m = env.bus.events.direct_get(skipped.sequence).await.unwrap();
    let origin = mnemo_bus::dlq::Origin {
        subject: &m.subject,
        stream_sequence: m.sequence,
        deliveries: 1,
        headers: Some(&m.headers),
        payload: &m.payload,
    };
    mnemo_bus::dlq::publish(
        &env.bus.jetstream,
        &env.ns,
        DLQ_SERVICE,
        &origin,
        "an older build could not read it",
    )
    .await;
    let letters = mnemo_bus::dlq::list(&env.bus).await.unwrap();
    let ours: Vec<&mnemo_bus::dlq::DeadLetter> = letters
        .iter()
        .filter(|l| l.service == DLQ_SERVICE)
        .collect();
    let mut sequences: Vec<u64> = ours.iter().map(|l| l.event_sequence).collect();
    sequences.sort();
    assert_eq!(sequences, vec![skipped.sequence, garbage]);

    let outcomes = dead_letters::retry(&env.bus, &mnemo_tests::database_url(), &ours).await;
    for (letter, outcome) in &outcomes {
        if letter.event_sequence == skipped.sequence {
            assert_eq!(outcome.as_ref().ok(), Some(&2), "{outcome:?}");
        } else {
            assert!(
                matches!(outcome, Err(Kept::StillUnreadable { sequence, .. }) if *sequence == garbage),
                "{outcome:?}"
            );
        }
    }
    assert_eq!(outcomes.len(), 2);
    // The card is back, in the new version of the read model; only the
    // letter still unread stays.
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    let cards: i64 = db
        .query_one("SELECT count(*) FROM learning_cards", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cards, 2);
    let left: Vec<u64> = mnemo_bus::dlq::list(&env.bus)
        .await
        .unwrap()
        .iter()
        .filter(|l| l.service == DLQ_SERVICE)
        .map(|l| l.event_sequence)
        .collect();
    assert_eq!(left, vec![garbage]);
}

/// An admin reading another learner's data leaves a trace in that
/// learner's history, which the learner can list; reading your own data
/// leaves none, and nobody else may list a learner's accesses.
#[tokio::test]
async fn an_admin_reading_a_learners_data_is_recorded_in_their_history() {
    let env = TestEnv::start().await;
    let mut alice = learning(&env, "alice").await;
    let created = create_card(&mut alice, "What is ATP?").await;
    // Alice reads her own cards: no access to record.
    alice
        .list_cards(pb::ListCardsRequest {
            min_sequence: created.sequence,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ops = LearningServiceClient::with_interceptor(
        env.channel().await,
        Bearer(token(&env, "ops", true)),
    );
    let read = ops
        .list_cards(pb::ListCardsRequest {
            owner: "alice".into(),
            min_sequence: created.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.cards.len(), 1);
    let mut ops_audit = audit(&env, "ops", true).await;
    let mut replay = ops_audit
        .replay_learning_history(pb::ReplayLearningHistoryRequest {
            owner: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while replay.message().await.unwrap().is_some() {}

    let mut alice_audit = audit(&env, "alice", false).await;
    let listed = alice_audit
        .list_accesses(pb::ListAccessesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let seen: Vec<(String, String)> = listed
        .accesses
        .iter()
        .map(|a| (a.by.clone(), a.action.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ops".to_owned(), "ListCards".to_owned()),
            ("ops".to_owned(), "ReplayLearningHistory".to_owned()),
        ]
    );
    // Bob may not list alice's accesses.
    let denied = audit(&env, "bob", false)
        .await
        .list_accesses(pb::ListAccessesRequest {
            owner: "alice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

/// `PreviewReview` (the web app's rating buttons): what each rating would
/// schedule, by the scheduler `SubmitReview` uses, recording nothing; the
/// review then schedules exactly what its preview said. Another owner's
/// card is NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_preview_shows_each_ratings_schedule_and_records_nothing() {
    let env = TestEnv::start().await;
    let mut alice = learning(&env, "alice").await;
    let card = create_card(&mut alice, "What makes ATP?")
        .await
        .card
        .unwrap();
    let when = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let preview = |card_id: String| pb::PreviewReviewRequest {
        card_id,
        at: Some(ts(when)),
    };
    let previews = alice
        .preview_review(preview(card.card_id.clone()))
        .await
        .unwrap()
        .into_inner()
        .previews;
    assert_eq!(
        previews.iter().map(|p| p.rating).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let dues: Vec<OffsetDateTime> = previews
        .iter()
        .map(|p| schedule_of(&p.schedule).due)
        .collect();
    assert!(
        dues.windows(2).all(|w| w[0] <= w[1]) && dues[0] < dues[3],
        "a better rating is never sooner: {dues:?}"
    );
    // Nothing recorded: a second preview is the same, and the card has no review.
    let again = alice
        .preview_review(preview(card.card_id.clone()))
        .await
        .unwrap()
        .into_inner()
        .previews;
    assert_eq!(again, previews);
    let reviewed = alice
        .submit_review(pb::SubmitReviewRequest {
            card_id: card.card_id.clone(),
            review_id: uuid::Uuid::now_v7().to_string(),
            rating: 3,
            reviewed_at: Some(ts(when)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reviewed.schedule, previews[2].schedule, "as previewed");
    let mut bob = learning(&env, "bob").await;
    let theirs = bob
        .preview_review(preview(card.card_id.clone()))
        .await
        .expect_err("alice's card");
    assert_eq!(theirs.code(), tonic::Code::NotFound);
}
