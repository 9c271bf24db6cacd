//! The double driven through qdrant-client, with the builder calls the engine uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    CollectionStatus, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, PayloadSchemaType, PointId, PointStruct, PointsIdsList, QueryPointsBuilder,
    Range, ScrollPointsBuilder, SetPayloadPointsBuilder, UpdateStatus, UpsertPointsBuilder, Value,
    Vector, VectorParamsBuilder, Vectors, point_id::PointIdOptions, vectors,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use qdrant_double::QdrantDouble;
use tonic::Code;

const DOCS: &str = "docs";

fn client(double: &QdrantDouble) -> Qdrant {
    Qdrant::from_url(&double.url())
        .skip_compatibility_check()
        .build()
        .unwrap()
}

fn client_with_key(double: &QdrantDouble, key: &str) -> Qdrant {
    Qdrant::from_url(&double.url())
        .api_key(key)
        .skip_compatibility_check()
        .build()
        .unwrap()
}

async fn create(client: &Qdrant, name: &str, size: u64, distance: Distance) {
    client
        .create_collection(
            CreateCollectionBuilder::new(name)
                .vectors_config(VectorParamsBuilder::new(size, distance)),
        )
        .await
        .unwrap();
}

fn point<const N: usize>(id: u64, vector: Vec<f32>, payload: [(&str, Value); N]) -> PointStruct {
    PointStruct::new(id, vector, Payload::from(payload))
}

async fn upsert(client: &Qdrant, points: Vec<PointStruct>) {
    client
        .upsert_points(UpsertPointsBuilder::new(DOCS, points).wait(true))
        .await
        .unwrap();
}

fn code(err: QdrantError) -> Code {
    match err {
        QdrantError::ResponseError { status } => status.code(),
        other => panic!("not a response error: {other}"),
    }
}

fn num(id: Option<&PointId>) -> u64 {
    match id.and_then(|id| id.point_id_options.as_ref()) {
        Some(PointIdOptions::Num(n)) => *n,
        other => panic!("not a numeric id: {other:?}"),
    }
}

/// A collection of `n` points on a circle-ish path, ids 1..=n, with `team` alternating.
async fn seeded(client: &Qdrant, n: u64) {
    create(client, DOCS, 2, Distance::Cosine).await;
    let points = (1..=n)
        .map(|id| {
            let team = if id % 2 == 0 { "even" } else { "odd" };
            #[allow(clippy::cast_precision_loss)]
            let angle = id as f32 / 10.0;
            point(
                id,
                vec![angle.cos(), angle.sin()],
                [("team", team.into()), ("rank", (id as i64).into())],
            )
        })
        .collect();
    upsert(client, points).await;
}

#[tokio::test]
async fn a_created_collection_exists_and_describes_its_vectors() {
    let double = QdrantDouble::start();
    let client = client(&double);
    assert!(!client.collection_exists(DOCS).await.unwrap());
    create(&client, DOCS, 4, Distance::Cosine).await;
    assert!(client.collection_exists(DOCS).await.unwrap());

    let info = client.collection_info(DOCS).await.unwrap().result.unwrap();
    assert_eq!(info.status, CollectionStatus::Green as i32);
    assert_eq!(info.points_count, Some(0));
    let params = info.config.unwrap().params.unwrap();
    let Some(Config::Params(vectors)) = params.vectors_config.unwrap().config else {
        panic!("one unnamed vector");
    };
    assert_eq!(vectors.size, 4);
    assert_eq!(vectors.distance, Distance::Cosine as i32);

    let names: Vec<String> = client
        .list_collections()
        .await
        .unwrap()
        .collections
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, [DOCS]);
    assert_eq!(double.collection_size(DOCS), Some(4));
    assert_eq!(double.calls("create"), 1);
    assert_eq!(double.calls("collection_exists"), 2);
    assert_eq!(double.calls("get"), 1);
}

#[tokio::test]
async fn creating_an_existing_collection_is_refused_as_already_exists() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 4, Distance::Cosine).await;
    let err = client
        .create_collection(
            CreateCollectionBuilder::new(DOCS)
                .vectors_config(VectorParamsBuilder::new(8, Distance::Dot)),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::AlreadyExists);
    assert_eq!(double.collection_size(DOCS), Some(4), "the first one stays");
}

#[tokio::test]
async fn a_deleted_collection_is_gone_and_a_missing_one_is_not_found() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 2, Distance::Cosine).await;
    assert!(client.delete_collection(DOCS).await.unwrap().result);
    assert!(!client.collection_exists(DOCS).await.unwrap());
    assert_eq!(double.collection_size(DOCS), None);
    assert_eq!(double.calls("delete_collection"), 1);
    assert_eq!(double.calls("delete"), 0, "`delete` counts points deletes");

    let err = client.collection_info(DOCS).await.unwrap_err();
    assert_eq!(code(err), Code::NotFound);
    let err = client
        .upsert_points(UpsertPointsBuilder::new(
            DOCS,
            vec![point(1, vec![1.0, 0.0], [])],
        ))
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::NotFound);
}

#[tokio::test]
async fn upsert_stores_points_and_replaces_the_same_id() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 2, Distance::Cosine).await;
    upsert(
        &client,
        vec![
            point(7, vec![1.0, 0.0], [("title", "old".into())]),
            point(3, vec![0.0, 1.0], [("title", "three".into())]),
        ],
    )
    .await;
    upsert(
        &client,
        vec![point(7, vec![0.5, 0.5], [("title", "new".into())])],
    )
    .await;

    assert_eq!(double.point_ids(DOCS), [3, 7]);
    let payload = double.payload(DOCS, 7).unwrap();
    assert_eq!(payload["title"].as_str().map(String::as_str), Some("new"));
    assert_eq!(double.payload(DOCS, 8), None);
    let info = client.collection_info(DOCS).await.unwrap().result.unwrap();
    assert_eq!(info.points_count, Some(2));
    assert_eq!(double.calls("upsert"), 2);
}

#[tokio::test]
#[allow(deprecated)]
async fn upsert_accepts_the_deprecated_data_vector_form() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 2, Distance::Dot).await;
    let legacy = PointStruct {
        id: Some(5.into()),
        payload: Payload::new().into(),
        vectors: Some(Vectors {
            vectors_options: Some(vectors::VectorsOptions::Vector(Vector {
                data: vec![2.0, 0.0],
                ..Vector::default()
            })),
        }),
    };
    upsert(&client, vec![legacy]).await;
    let found = client
        .query(QueryPointsBuilder::new(DOCS).query(vec![1.0, 0.0]))
        .await
        .unwrap()
        .result;
    assert_eq!(found.len(), 1);
    assert!((found[0].score - 2.0).abs() < 1e-6);
}

#[tokio::test]
async fn a_vector_of_the_wrong_size_is_refused() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 3, Distance::Cosine).await;
    let err = client
        .upsert_points(UpsertPointsBuilder::new(
            DOCS,
            vec![
                point(1, vec![1.0, 0.0, 0.0], []),
                point(2, vec![1.0, 0.0], []),
            ],
        ))
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);
    assert!(
        double.point_ids(DOCS).is_empty(),
        "nothing of the batch is applied"
    );

    let err = client
        .query(QueryPointsBuilder::new(DOCS).query(vec![1.0]))
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);
}

#[tokio::test]
async fn writes_report_completed_only_when_waited_for() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 2, Distance::Cosine).await;
    let waited = client
        .upsert_points(
            UpsertPointsBuilder::new(DOCS, vec![point(1, vec![1.0, 0.0], [])]).wait(true),
        )
        .await
        .unwrap();
    assert_eq!(
        waited.result.unwrap().status,
        UpdateStatus::Completed as i32
    );
    let not_waited = client
        .upsert_points(UpsertPointsBuilder::new(
            DOCS,
            vec![point(2, vec![1.0, 0.0], [])],
        ))
        .await
        .unwrap();
    assert_eq!(
        not_waited.result.unwrap().status,
        UpdateStatus::Acknowledged as i32
    );
    assert_eq!(double.point_ids(DOCS), [1, 2], "applied either way");
}

#[tokio::test]
async fn query_returns_nearest_points_by_cosine_in_score_order() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 2, Distance::Cosine).await;
    upsert(
        &client,
        vec![
            point(1, vec![0.0, 1.0], [("title", "up".into())]),
            point(2, vec![10.0, 0.0], [("title", "right, long".into())]),
            point(3, vec![1.0, 1.0], [("title", "diagonal".into())]),
            point(4, vec![-1.0, 0.0], [("title", "left".into())]),
            point(5, vec![3.0, 0.0], [("title", "right, short".into())]),
        ],
    )
    .await;
    let found = client
        .query(
            QueryPointsBuilder::new(DOCS)
                .query(vec![2.0, 0.0])
                .limit(4)
                .with_payload(true),
        )
        .await
        .unwrap()
        .result;
    let ids: Vec<u64> = found.iter().map(|p| num(p.id.as_ref())).collect();
    assert_eq!(
        ids,
        [2, 5, 3, 1],
        "length does not matter; equal scores by id"
    );
    let scores: Vec<f32> = found.iter().map(|p| p.score).collect();
    let expected = [1.0, 1.0, std::f32::consts::FRAC_1_SQRT_2, 0.0];
    for (got, want) in scores.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{scores:?}");
    }
    assert_eq!(
        found[2].payload["title"].as_str().map(String::as_str),
        Some("diagonal")
    );
    assert_eq!(double.calls("query"), 1);
}

#[tokio::test]
async fn query_applies_the_payload_filter_before_the_limit() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 10).await;
    let filter = Filter::must([Condition::matches("team", "even".to_owned())]);
    let found = client
        .query(
            QueryPointsBuilder::new(DOCS)
                .query(vec![1.0, 0.0])
                .filter(filter.clone())
                .limit(3),
        )
        .await
        .unwrap()
        .result;
    let ids: Vec<u64> = found.iter().map(|p| num(p.id.as_ref())).collect();
    assert_eq!(
        ids,
        [2, 4, 6],
        "the nearest even points, not the even ones of the top 3"
    );
    assert!(
        found.iter().all(|p| p.payload.is_empty()),
        "no payload unless asked"
    );
    assert_eq!(double.last_query_filter(), Some(filter));
}

#[tokio::test]
async fn query_honours_offset_score_threshold_and_payload_selection() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 10).await;
    let ids = |points: &[qdrant_client::qdrant::ScoredPoint]| -> Vec<u64> {
        points.iter().map(|p| num(p.id.as_ref())).collect()
    };
    let page = client
        .query(
            QueryPointsBuilder::new(DOCS)
                .query(vec![1.0, 0.0])
                .limit(3)
                .offset(2),
        )
        .await
        .unwrap()
        .result;
    assert_eq!(ids(&page), [3, 4, 5]);

    // cos(0.4) ≈ 0.921, cos(0.5) ≈ 0.878
    let close = client
        .query(
            QueryPointsBuilder::new(DOCS)
                .query(vec![1.0, 0.0])
                .score_threshold(0.9)
                .with_payload(qdrant_client::qdrant::PayloadIncludeSelector::new(vec![
                    "rank".to_owned(),
                ])),
        )
        .await
        .unwrap()
        .result;
    assert_eq!(ids(&close), [1, 2, 3, 4]);
    assert_eq!(close[0].payload.len(), 1);
    assert_eq!(close[0].payload["rank"].as_integer(), Some(1));
    assert_eq!(double.last_query_filter(), None);
}

#[tokio::test]
async fn query_with_euclid_ranks_by_ascending_distance() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 2, Distance::Euclid).await;
    upsert(
        &client,
        vec![
            point(1, vec![3.0, 4.0], []),
            point(2, vec![1.0, 0.0], []),
            point(3, vec![0.0, 2.0], []),
        ],
    )
    .await;
    let found = client
        .query(
            QueryPointsBuilder::new(DOCS)
                .query(vec![0.0, 0.0])
                .with_vectors(true),
        )
        .await
        .unwrap()
        .result;
    let ranked: Vec<(u64, f32)> = found
        .iter()
        .map(|p| (num(p.id.as_ref()), p.score))
        .collect();
    assert_eq!(ranked, [(2, 1.0), (3, 2.0), (1, 5.0)]);
    let vector = found[0].vectors.clone().unwrap();
    let Some(qdrant_client::qdrant::vectors_output::VectorsOptions::Vector(v)) =
        vector.vectors_options
    else {
        panic!("one unnamed vector");
    };
    assert_eq!(
        v.into_vector(),
        qdrant_client::qdrant::vector_output::Vector::Dense(qdrant_client::qdrant::DenseVector {
            data: vec![1.0, 0.0]
        })
    );
}

#[tokio::test]
async fn count_is_exact_with_and_without_a_filter() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 9).await;
    let all = client
        .count(CountPointsBuilder::new(DOCS).exact(true))
        .await
        .unwrap();
    assert_eq!(all.result.unwrap().count, 9);
    let over_5 = Filter::must([Condition::range(
        "rank",
        Range {
            gt: Some(5.0),
            ..Range::default()
        },
    )]);
    let some = client
        .count(CountPointsBuilder::new(DOCS).filter(over_5).exact(true))
        .await
        .unwrap();
    assert_eq!(some.result.unwrap().count, 4);
    assert_eq!(double.calls("count"), 2);
}

#[tokio::test]
async fn scroll_pages_through_every_id_in_order() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 25).await;
    let mut seen = Vec::new();
    let mut offset: Option<PointId> = None;
    loop {
        let mut request = ScrollPointsBuilder::new(DOCS).limit(10);
        if let Some(offset) = offset.take() {
            request = request.offset(offset);
        }
        let page = client.scroll(request).await.unwrap();
        assert!(page.result.len() <= 10);
        for p in &page.result {
            assert!(
                p.payload.contains_key("team"),
                "scroll returns payload by default"
            );
            seen.push(num(p.id.as_ref()));
        }
        match page.next_page_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    assert_eq!(double.calls("scroll"), 3);
}

#[tokio::test]
async fn scroll_with_a_filter_returns_only_matching_points() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 10).await;
    let page = client
        .scroll(
            ScrollPointsBuilder::new(DOCS)
                .filter(Filter::must([Condition::matches("team", "odd".to_owned())]))
                .limit(3)
                .with_payload(false),
        )
        .await
        .unwrap();
    let ids: Vec<u64> = page.result.iter().map(|p| num(p.id.as_ref())).collect();
    assert_eq!(ids, [1, 3, 5]);
    assert!(page.result.iter().all(|p| p.payload.is_empty()));
    assert_eq!(num(page.next_page_offset.as_ref()), 7);
}

#[tokio::test]
async fn delete_by_ids_removes_only_those_points() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 5).await;
    client
        .delete_points(
            DeletePointsBuilder::new(DOCS)
                .points(PointsIdsList::from(vec![2_u64, 4, 99]))
                .wait(true),
        )
        .await
        .unwrap();
    assert_eq!(double.point_ids(DOCS), [1, 3, 5]);
    assert_eq!(double.calls("delete"), 1);
}

#[tokio::test]
async fn delete_by_filter_removes_the_matching_points() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 6).await;
    let odd = Filter::must([Condition::matches("team", "odd".to_owned())]);
    client
        .delete_points(
            DeletePointsBuilder::new(DOCS)
                .points(PointsSelectorOneOf::Filter(odd))
                .wait(true),
        )
        .await
        .unwrap();
    assert_eq!(double.point_ids(DOCS), [2, 4, 6]);
}

#[tokio::test]
async fn set_payload_merges_keys_into_the_selected_points() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 4).await;
    let extra = Payload::from([("archived", Value::from(true)), ("team", "moved".into())]);
    client
        .set_payload(
            SetPayloadPointsBuilder::new(DOCS, extra)
                .points_selector(PointsIdsList::from(vec![1_u64]))
                .wait(true),
        )
        .await
        .unwrap();
    let one = double.payload(DOCS, 1).unwrap();
    assert_eq!(one["archived"].as_bool(), Some(true));
    assert_eq!(one["team"].as_str().map(String::as_str), Some("moved"));
    assert_eq!(one["rank"].as_integer(), Some(1), "other keys stay");

    let even = Filter::must([Condition::matches("team", "even".to_owned())]);
    client
        .set_payload(
            SetPayloadPointsBuilder::new(DOCS, Payload::from([("flag", Value::from(1_i64))]))
                .points_selector(even)
                .wait(true),
        )
        .await
        .unwrap();
    let flagged: Vec<u64> = double
        .point_ids(DOCS)
        .into_iter()
        .filter(|id| double.payload(DOCS, *id).unwrap().contains_key("flag"))
        .collect();
    assert_eq!(flagged, [2, 4]);

    let err = client
        .set_payload(
            SetPayloadPointsBuilder::new(DOCS, Payload::from([("x", Value::from(1_i64))]))
                .points_selector(PointsIdsList::from(vec![42_u64])),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::NotFound);
}

#[tokio::test]
async fn create_field_index_is_recorded_and_reported() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 3).await;
    for (field, kind) in [("team", FieldType::Keyword), ("rank", FieldType::Integer)] {
        let reply = client
            .create_field_index(
                CreateFieldIndexCollectionBuilder::new(DOCS, field, kind).wait(true),
            )
            .await
            .unwrap();
        assert_eq!(reply.result.unwrap().status, UpdateStatus::Completed as i32);
    }
    assert_eq!(double.field_indexes(DOCS), ["rank", "team"]);
    assert_eq!(double.calls("create_field_index"), 2);
    let schema = client
        .collection_info(DOCS)
        .await
        .unwrap()
        .result
        .unwrap()
        .payload_schema;
    assert_eq!(schema["team"].data_type, PayloadSchemaType::Keyword as i32);
    assert_eq!(schema["rank"].data_type, PayloadSchemaType::Integer as i32);
    assert_eq!(schema["team"].points, Some(3));
}

#[tokio::test]
async fn calls_without_the_api_key_are_refused() {
    let double = QdrantDouble::start_with_api_key("s3cret");
    let err = client(&double).collection_exists(DOCS).await.unwrap_err();
    assert_eq!(code(err), Code::Unauthenticated);
    let err = client_with_key(&double, "wrong")
        .list_collections()
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::Unauthenticated);
    let err = client(&double)
        .upsert_points(UpsertPointsBuilder::new(
            DOCS,
            vec![point(1, vec![1.0], [])],
        ))
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::Unauthenticated);

    let authed = client_with_key(&double, "s3cret");
    create(&authed, DOCS, 1, Distance::Dot).await;
    assert!(authed.collection_exists(DOCS).await.unwrap());
    assert_eq!(
        double.calls("collection_exists"),
        2,
        "refused calls are counted too"
    );
}

#[tokio::test]
async fn an_unavailable_double_answers_unavailable() {
    let double = QdrantDouble::start();
    let client = client(&double);
    create(&client, DOCS, 2, Distance::Cosine).await;
    double.set_unavailable(true);
    let err = client.collection_exists(DOCS).await.unwrap_err();
    assert_eq!(code(err), Code::Unavailable);
    let err = client
        .upsert_points(UpsertPointsBuilder::new(
            DOCS,
            vec![point(1, vec![1.0, 0.0], [])],
        ))
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::Unavailable);
    assert_eq!(
        double.calls("upsert"),
        2,
        "qdrant-client retries a points call once on unavailable"
    );
    assert!(double.point_ids(DOCS).is_empty());

    double.set_unavailable(false);
    upsert(&client, vec![point(1, vec![1.0, 0.0], [])]).await;
    assert_eq!(double.point_ids(DOCS), [1]);
}

#[tokio::test]
async fn unmodelled_rpcs_answer_unimplemented() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 2).await;
    let err = client
        .get_points(GetPointsBuilder::new(DOCS, vec![PointId::from(1)]))
        .await
        .unwrap_err();
    match err {
        QdrantError::ResponseError { status } => {
            assert_eq!(status.code(), Code::Unimplemented);
            assert!(status.message().contains("is not modelled"), "{status:?}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(double.calls("get_points"), 1);
    assert_eq!(double.calls("points.get"), 1);
}

#[tokio::test]
async fn unmodelled_filter_conditions_are_refused() {
    let double = QdrantDouble::start();
    let client = client(&double);
    seeded(&client, 2).await;
    let text = Filter::must([Condition::matches_text("team", "two words")]);
    let err = client
        .query(
            QueryPointsBuilder::new(DOCS)
                .query(vec![1.0, 0.0])
                .filter(text.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);
    assert_eq!(
        double.last_query_filter(),
        Some(text.clone()),
        "recorded all the same"
    );
    let err = client
        .count(CountPointsBuilder::new(DOCS).filter(text))
        .await
        .unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);
}

#[tokio::test]
async fn the_health_check_reports_a_compatible_version() {
    let double = QdrantDouble::start_with_api_key("k");
    let reply = client(&double).health_check().await.unwrap();
    assert_eq!(reply.version, "1.20.0");
    assert_eq!(double.calls("health_check"), 1);
}

#[test]
fn the_double_works_from_a_plain_test_and_stops_when_dropped() {
    let double = QdrantDouble::start();
    let url = double.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = client(&double);
    runtime.block_on(create(&client, DOCS, 2, Distance::Cosine));
    assert_eq!(double.collection_size(DOCS), Some(2));
    drop(double);

    let addr = url.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens after drop"
    );
    let fresh = Qdrant::from_url(&url)
        .skip_compatibility_check()
        .build()
        .unwrap();
    assert!(runtime.block_on(fresh.collection_exists(DOCS)).is_err());
}

/// The calls exactly as the engine's Qdrant vector store shapes them (engine/src/qdrant).
#[tokio::test]
async fn the_engine_call_shapes_round_trip() {
    use qdrant_client::qdrant::{Query, RepeatedStrings, r#match::MatchValue};
    let double = QdrantDouble::start_with_api_key("k");
    let timeout = std::time::Duration::from_secs(5);
    let client = Qdrant::from_url(&double.url())
        .api_key(Some("k".to_owned()))
        .timeout(timeout)
        .connect_timeout(timeout)
        .skip_compatibility_check()
        .build()
        .unwrap();
    if !client.collection_exists(DOCS).await.unwrap() {
        create(&client, DOCS, 2, Distance::Cosine).await;
    }
    client
        .create_field_index(
            CreateFieldIndexCollectionBuilder::new(DOCS, "doc_type", FieldType::Keyword).wait(true),
        )
        .await
        .unwrap();
    let points: Vec<PointStruct> = (1..=6_u64)
        .map(|id| {
            let mut payload = Payload::new();
            payload.insert("doc_type", if id <= 3 { "faq" } else { "guide" });
            if id != 2 {
                payload.insert("mime", "text/markdown");
            }
            PointStruct::new(PointId::from(id), vec![1.0, id as f32 / 10.0], payload)
        })
        .collect();
    client
        .upsert_points(UpsertPointsBuilder::new(DOCS, points).wait(true))
        .await
        .unwrap();
    client
        .delete_points(
            DeletePointsBuilder::new(DOCS)
                .points(PointsIdsList {
                    ids: vec![PointId::from(6)],
                })
                .wait(true),
        )
        .await
        .unwrap();

    let mut filter = Filter::default();
    filter
        .must
        .push(Condition::from(qdrant_client::qdrant::FieldCondition {
            key: "doc_type".into(),
            r#match: Some(qdrant_client::qdrant::Match {
                match_value: Some(MatchValue::Keywords(RepeatedStrings {
                    strings: vec!["faq".into()],
                })),
            }),
            ..Default::default()
        }));
    filter.must_not.push(Condition::is_empty("mime"));
    filter.must.push(Condition::has_id([1_u64, 2, 3, 4]));
    let found = client
        .query(
            QueryPointsBuilder::new(DOCS)
                .query(Query::new_nearest(vec![1.0, 0.0]))
                .limit(10)
                .filter(filter.clone()),
        )
        .await
        .unwrap()
        .result;
    let ids: Vec<u64> = found.iter().map(|p| num(p.id.as_ref())).collect();
    assert_eq!(ids, [1, 3], "faq, with a mime, among the listed ids");
    assert_eq!(double.last_query_filter(), Some(filter));

    let count = client
        .count(CountPointsBuilder::new(DOCS).exact(true))
        .await
        .unwrap();
    assert_eq!(count.result.unwrap().count, 5);
    let page = client
        .scroll(
            ScrollPointsBuilder::new(DOCS)
                .limit(2)
                .with_payload(false)
                .with_vectors(false)
                .offset(PointId::from(3)),
        )
        .await
        .unwrap();
    let ids: Vec<u64> = page.result.iter().map(|p| num(p.id.as_ref())).collect();
    assert_eq!(ids, [3, 4]);
    assert!(
        page.result
            .iter()
            .all(|p| p.payload.is_empty() && p.vectors.is_none())
    );
    assert_eq!(num(page.next_page_offset.as_ref()), 5);
    assert_eq!(double.field_indexes(DOCS), ["doc_type"]);
}
