//! The double's in-memory data and the modelled operations on it: plain synchronous functions
//! from a request message to a response message (or a `Status`), called under the state lock.

use std::collections::{BTreeMap, HashMap};

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::vectors::VectorsOptions;
use qdrant_client::qdrant::{
    CollectionConfig, CollectionDescription, CollectionExists, CollectionExistsRequest,
    CollectionExistsResponse, CollectionInfo, CollectionOperationResponse, CollectionParams,
    CollectionStatus, CountPoints, CountResponse, CountResult, CreateCollection,
    CreateFieldIndexCollection, DeleteCollection, DeletePoints, DenseVector, Distance, FieldType,
    Filter, GetCollectionInfoRequest, GetCollectionInfoResponse, HnswConfigDiff,
    ListCollectionsRequest, ListCollectionsResponse, OptimizerStatus, OptimizersConfigDiff,
    PayloadSchemaInfo, PayloadSchemaType, PointId, PointsOperationResponse, PointsSelector,
    QueryPoints, QueryResponse, RetrievedPoint, ScoredPoint, ScrollPoints, ScrollResponse,
    SetPayloadPoints, UpdateMode, UpdateResult, UpdateStatus, UpsertPoints, Vector, VectorOutput,
    VectorParams, VectorsConfig, VectorsOutput, WalConfigDiff, WithPayloadSelector,
    WithVectorsSelector, payload_index_params, query, vector, vector_input, vector_output,
    vectors_config, vectors_output, with_payload_selector, with_vectors_selector,
};
use tonic::Status;

use crate::filter::{self, Payload};

/// Qdrant's default `limit` for query and scroll.
const DEFAULT_LIMIT: u64 = 10;

pub(crate) fn not_modelled(what: &str) -> Status {
    Status::invalid_argument(format!("qdrant-double: {what} is not modelled"))
}

fn collection_not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

#[derive(Debug, Clone)]
pub(crate) struct StoredPoint {
    /// As stored: normalised for Cosine collections, as Qdrant does.
    pub(crate) vector: Vec<f32>,
    pub(crate) payload: Payload,
    pub(crate) version: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Collection {
    pub(crate) size: u64,
    pub(crate) distance: Distance,
    pub(crate) points: BTreeMap<u64, StoredPoint>,
    pub(crate) field_indexes: BTreeMap<String, FieldType>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) collections: BTreeMap<String, Collection>,
    pub(crate) calls: HashMap<String, usize>,
    pub(crate) last_query_filter: Option<Filter>,
    operation_id: u64,
}

impl State {
    fn collection(&self, name: &str) -> Result<&Collection, Status> {
        self.collections
            .get(name)
            .ok_or_else(|| collection_not_found(name))
    }

    fn collection_mut(&mut self, name: &str) -> Result<&mut Collection, Status> {
        self.collections
            .get_mut(name)
            .ok_or_else(|| collection_not_found(name))
    }

    fn next_operation(&mut self) -> u64 {
        self.operation_id += 1;
        self.operation_id
    }

    fn update_result(&mut self, wait: Option<bool>) -> PointsOperationResponse {
        // Real Qdrant answers Acknowledged unless the caller waited for the write to apply.
        let status = if wait == Some(true) {
            UpdateStatus::Completed
        } else {
            UpdateStatus::Acknowledged
        };
        PointsOperationResponse {
            result: Some(UpdateResult {
                operation_id: Some(self.next_operation()),
                status: status.into(),
            }),
            time: 0.0,
            usage: None,
        }
    }

    // ---- Collections ----

    pub(crate) fn collection_exists(
        &mut self,
        req: CollectionExistsRequest,
    ) -> Result<CollectionExistsResponse, Status> {
        Ok(CollectionExistsResponse {
            result: Some(CollectionExists {
                exists: self.collections.contains_key(&req.collection_name),
            }),
            time: 0.0,
        })
    }

    pub(crate) fn list(
        &mut self,
        _req: ListCollectionsRequest,
    ) -> Result<ListCollectionsResponse, Status> {
        Ok(ListCollectionsResponse {
            collections: self
                .collections
                .keys()
                .map(|name| CollectionDescription { name: name.clone() })
                .collect(),
            time: 0.0,
        })
    }

    pub(crate) fn create(
        &mut self,
        req: CreateCollection,
    ) -> Result<CollectionOperationResponse, Status> {
        let name = req.collection_name;
        if name.is_empty() {
            return Err(Status::invalid_argument(
                "collection_name must not be empty",
            ));
        }
        if req.sparse_vectors_config.is_some() {
            return Err(not_modelled("a sparse vectors config"));
        }
        let params = match req.vectors_config.and_then(|c| c.config) {
            Some(vectors_config::Config::Params(params)) => params,
            Some(vectors_config::Config::ParamsMap(_)) => {
                return Err(not_modelled("named vectors (a vectors config map)"));
            }
            None => return Err(not_modelled("a collection without a vectors config")),
        };
        if params.multivector_config.is_some() {
            return Err(not_modelled("multi-vectors"));
        }
        if params.size == 0 {
            return Err(Status::invalid_argument("vector size must be at least 1"));
        }
        let distance = match Distance::try_from(params.distance) {
            Ok(Distance::UnknownDistance) | Err(_) => {
                return Err(Status::invalid_argument("unknown distance"));
            }
            Ok(distance) => distance,
        };
        if self.collections.contains_key(&name) {
            return Err(Status::already_exists(format!(
                "Wrong input: Collection `{name}` already exists!"
            )));
        }
        self.collections.insert(
            name,
            Collection {
                size: params.size,
                distance,
                points: BTreeMap::new(),
                field_indexes: BTreeMap::new(),
            },
        );
        Ok(CollectionOperationResponse {
            result: true,
            time: 0.0,
        })
    }

    pub(crate) fn delete_collection(
        &mut self,
        req: DeleteCollection,
    ) -> Result<CollectionOperationResponse, Status> {
        let existed = self.collections.remove(&req.collection_name).is_some();
        Ok(CollectionOperationResponse {
            result: existed,
            time: 0.0,
        })
    }

    pub(crate) fn get(
        &mut self,
        req: GetCollectionInfoRequest,
    ) -> Result<GetCollectionInfoResponse, Status> {
        let c = self.collection(&req.collection_name)?;
        let payload_schema = c
            .field_indexes
            .iter()
            .map(|(field, field_type)| {
                let points = c
                    .points
                    .values()
                    .filter(|p| !filter::values_at(&p.payload, field).is_empty())
                    .count();
                let info = PayloadSchemaInfo {
                    data_type: schema_type(*field_type).into(),
                    params: None,
                    points: Some(points as u64),
                };
                (field.clone(), info)
            })
            .collect();
        let vectors_config = VectorsConfig {
            config: Some(vectors_config::Config::Params(VectorParams {
                size: c.size,
                distance: c.distance.into(),
                ..VectorParams::default()
            })),
        };
        let config = CollectionConfig {
            params: Some(CollectionParams {
                shard_number: 1,
                vectors_config: Some(vectors_config),
                replication_factor: Some(1),
                write_consistency_factor: Some(1),
                ..CollectionParams::default()
            }),
            // Qdrant's defaults; the double does not use them.
            hnsw_config: Some(HnswConfigDiff {
                m: Some(16),
                ef_construct: Some(100),
                full_scan_threshold: Some(10_000),
                ..HnswConfigDiff::default()
            }),
            optimizer_config: Some(OptimizersConfigDiff {
                deleted_threshold: Some(0.2),
                vacuum_min_vector_number: Some(1000),
                default_segment_number: Some(0),
                indexing_threshold: Some(10_000),
                flush_interval_sec: Some(5),
                ..OptimizersConfigDiff::default()
            }),
            wal_config: Some(WalConfigDiff {
                wal_capacity_mb: Some(32),
                wal_segments_ahead: Some(0),
                ..WalConfigDiff::default()
            }),
            ..CollectionConfig::default()
        };
        Ok(GetCollectionInfoResponse {
            result: Some(CollectionInfo {
                status: CollectionStatus::Green.into(),
                optimizer_status: Some(OptimizerStatus {
                    ok: true,
                    error: String::new(),
                }),
                segments_count: 1,
                config: Some(config),
                payload_schema,
                points_count: Some(c.points.len() as u64),
                indexed_vectors_count: Some(0),
                ..CollectionInfo::default()
            }),
            time: 0.0,
        })
    }

    // ---- Points ----

    pub(crate) fn upsert(&mut self, req: UpsertPoints) -> Result<PointsOperationResponse, Status> {
        if req.update_filter.is_some() {
            return Err(not_modelled("a conditional upsert (update_filter)"));
        }
        if req.shard_key_selector.is_some() {
            return Err(not_modelled("shard keys"));
        }
        match req.update_mode.map(UpdateMode::try_from) {
            None | Some(Ok(UpdateMode::Upsert)) => {}
            Some(_) => return Err(not_modelled("an update_mode other than upsert")),
        }
        let c = self.collection(&req.collection_name)?;
        let (size, distance) = (c.size, c.distance);
        // Validate the whole batch before applying any of it, as Qdrant does.
        let mut points = Vec::with_capacity(req.points.len());
        for point in req.points {
            let id = num_id(point.id.as_ref())?;
            let vector = dense_vector(point.vectors.and_then(|v| v.vectors_options))?;
            check_dimension(size, &vector)?;
            let vector = if distance == Distance::Cosine {
                normalise(vector)
            } else {
                vector
            };
            points.push((id, vector, point.payload));
        }
        let version = self.next_operation();
        let c = self.collection_mut(&req.collection_name)?;
        for (id, vector, payload) in points {
            c.points.insert(
                id,
                StoredPoint {
                    vector,
                    payload,
                    version,
                },
            );
        }
        Ok(self.update_result(req.wait))
    }

    pub(crate) fn delete(&mut self, req: DeletePoints) -> Result<PointsOperationResponse, Status> {
        if req.shard_key_selector.is_some() {
            return Err(not_modelled("shard keys"));
        }
        let c = self.collection(&req.collection_name)?;
        let ids = selected_ids(c, req.points.as_ref(), false)?;
        let c = self.collection_mut(&req.collection_name)?;
        for id in ids {
            c.points.remove(&id);
        }
        Ok(self.update_result(req.wait))
    }

    pub(crate) fn set_payload(
        &mut self,
        req: SetPayloadPoints,
    ) -> Result<PointsOperationResponse, Status> {
        if req.key.is_some() {
            return Err(not_modelled("set_payload with a nested `key`"));
        }
        if req.shard_key_selector.is_some() {
            return Err(not_modelled("shard keys"));
        }
        let c = self.collection(&req.collection_name)?;
        let ids = selected_ids(c, req.points_selector.as_ref(), true)?;
        let version = self.next_operation();
        let c = self.collection_mut(&req.collection_name)?;
        for id in ids {
            if let Some(point) = c.points.get_mut(&id) {
                point.payload.extend(req.payload.clone());
                point.version = version;
            }
        }
        Ok(self.update_result(req.wait))
    }

    pub(crate) fn create_field_index(
        &mut self,
        req: CreateFieldIndexCollection,
    ) -> Result<PointsOperationResponse, Status> {
        use payload_index_params::IndexParams;
        let from_params = req
            .field_index_params
            .and_then(|p| p.index_params)
            .map(|p| match p {
                IndexParams::KeywordIndexParams(_) => FieldType::Keyword,
                IndexParams::IntegerIndexParams(_) => FieldType::Integer,
                IndexParams::FloatIndexParams(_) => FieldType::Float,
                IndexParams::GeoIndexParams(_) => FieldType::Geo,
                IndexParams::TextIndexParams(_) => FieldType::Text,
                IndexParams::BoolIndexParams(_) => FieldType::Bool,
                IndexParams::DatetimeIndexParams(_) => FieldType::Datetime,
                IndexParams::UuidIndexParams(_) => FieldType::Uuid,
            });
        let field_type = match req.field_type.map(FieldType::try_from) {
            Some(Ok(t)) => t,
            Some(Err(_)) => return Err(Status::invalid_argument("unknown field_type")),
            None => from_params.ok_or_else(|| {
                Status::invalid_argument("create_field_index needs field_type or index params")
            })?,
        };
        if req.field_name.is_empty() {
            return Err(Status::invalid_argument("field_name must not be empty"));
        }
        let c = self.collection_mut(&req.collection_name)?;
        c.field_indexes.insert(req.field_name, field_type);
        Ok(self.update_result(req.wait))
    }

    pub(crate) fn count(&mut self, req: CountPoints) -> Result<CountResponse, Status> {
        if req.shard_key_selector.is_some() {
            return Err(not_modelled("shard keys"));
        }
        let c = self.collection(&req.collection_name)?;
        let filter = checked_filter(req.filter.as_ref())?;
        let count = c
            .points
            .iter()
            .filter(|(id, p)| passes(filter, **id, p))
            .count();
        Ok(CountResponse {
            result: Some(CountResult {
                count: count as u64,
            }),
            time: 0.0,
            usage: None,
        })
    }

    pub(crate) fn scroll(&mut self, req: ScrollPoints) -> Result<ScrollResponse, Status> {
        if req.order_by.is_some() {
            return Err(not_modelled("scroll order_by"));
        }
        if req.shard_key_selector.is_some() {
            return Err(not_modelled("shard keys"));
        }
        let c = self.collection(&req.collection_name)?;
        let filter = checked_filter(req.filter.as_ref())?;
        // Scroll returns the payload unless told otherwise, query does not (Qdrant's defaults).
        let payload = PayloadSelection::new(req.with_payload.as_ref(), true)?;
        let with_vectors = wants_vectors(req.with_vectors.as_ref())?;
        let limit = req.limit.map_or(DEFAULT_LIMIT, u64::from);
        if limit == 0 {
            return Err(Status::invalid_argument("limit must be at least 1"));
        }
        let start = match req.offset {
            Some(ref offset) => num_id(Some(offset))?,
            None => 0,
        };
        let mut matching = c
            .points
            .range(start..)
            .filter(|(id, p)| passes(filter, **id, p));
        let page: Vec<RetrievedPoint> = matching
            .by_ref()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(id, p)| RetrievedPoint {
                id: Some(PointId::from(*id)),
                payload: payload.apply(&p.payload),
                vectors: with_vectors.then(|| vectors_output(&p.vector)),
                ..RetrievedPoint::default()
            })
            .collect();
        let next_page_offset = matching.next().map(|(id, _)| PointId::from(*id));
        Ok(ScrollResponse {
            next_page_offset,
            result: page,
            time: 0.0,
            usage: None,
        })
    }

    pub(crate) fn query(&mut self, req: QueryPoints) -> Result<QueryResponse, Status> {
        self.last_query_filter = req.filter.clone();
        if !req.prefetch.is_empty() {
            return Err(not_modelled("prefetch"));
        }
        if req.using.as_deref().is_some_and(|u| !u.is_empty()) {
            return Err(not_modelled("named vectors (`using`)"));
        }
        if req.lookup_from.is_some() {
            return Err(not_modelled("lookup_from"));
        }
        if req.shard_key_selector.is_some() {
            return Err(not_modelled("shard keys"));
        }
        let c = self.collection(&req.collection_name)?;
        let target = match req.query.and_then(|q| q.variant) {
            Some(query::Variant::Nearest(input)) => match input.variant {
                Some(vector_input::Variant::Dense(dense)) => dense.data,
                _ => {
                    return Err(not_modelled(
                        "a nearest query by anything but a dense vector",
                    ));
                }
            },
            Some(_) => return Err(not_modelled("a query other than nearest")),
            None => return Err(not_modelled("a query without `query`")),
        };
        check_dimension(c.size, &target)?;
        let filter = checked_filter(req.filter.as_ref())?;
        let payload = PayloadSelection::new(req.with_payload.as_ref(), false)?;
        let with_vectors = wants_vectors(req.with_vectors.as_ref())?;
        let target = if c.distance == Distance::Cosine {
            normalise(target)
        } else {
            target
        };
        let higher_is_better = matches!(c.distance, Distance::Cosine | Distance::Dot);
        let mut scored: Vec<(u64, f32, &StoredPoint)> = c
            .points
            .iter()
            .filter(|(id, p)| passes(filter, **id, p))
            .map(|(id, p)| (*id, score(c.distance, &target, &p.vector), p))
            .filter(|(_, s, _)| {
                req.score_threshold
                    .is_none_or(|t| if higher_is_better { *s >= t } else { *s <= t })
            })
            .collect();
        scored.sort_by(|(a_id, a, _), (b_id, b, _)| {
            let by_score = if higher_is_better {
                b.total_cmp(a)
            } else {
                a.total_cmp(b)
            };
            by_score.then(a_id.cmp(b_id))
        });
        let offset = usize::try_from(req.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = usize::try_from(req.limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(usize::MAX);
        let result = scored
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(id, score, p)| ScoredPoint {
                id: Some(PointId::from(id)),
                payload: payload.apply(&p.payload),
                score,
                version: p.version,
                vectors: with_vectors.then(|| vectors_output(&p.vector)),
                ..ScoredPoint::default()
            })
            .collect();
        Ok(QueryResponse {
            result,
            time: 0.0,
            usage: None,
        })
    }
}

fn schema_type(field_type: FieldType) -> PayloadSchemaType {
    match field_type {
        FieldType::Keyword => PayloadSchemaType::Keyword,
        FieldType::Integer => PayloadSchemaType::Integer,
        FieldType::Float => PayloadSchemaType::Float,
        FieldType::Geo => PayloadSchemaType::Geo,
        FieldType::Text => PayloadSchemaType::Text,
        FieldType::Bool => PayloadSchemaType::Bool,
        FieldType::Datetime => PayloadSchemaType::Datetime,
        FieldType::Uuid => PayloadSchemaType::Uuid,
    }
}

fn num_id(id: Option<&PointId>) -> Result<u64, Status> {
    match id.and_then(|id| id.point_id_options.as_ref()) {
        Some(PointIdOptions::Num(n)) => Ok(*n),
        Some(PointIdOptions::Uuid(_)) => Err(not_modelled("a UUID point id")),
        None => Err(Status::invalid_argument("a point without an id")),
    }
}

/// The dense vector of a point, from the new `Vector::Dense` form or the deprecated `data`.
fn dense_vector(vectors: Option<VectorsOptions>) -> Result<Vec<f32>, Status> {
    match vectors {
        Some(VectorsOptions::Vector(v)) => vector_data(v),
        Some(VectorsOptions::Vectors(mut named)) => match named.vectors.remove("") {
            // "" is Qdrant's name for the unnamed vector.
            Some(v) if named.vectors.is_empty() => vector_data(v),
            _ => Err(not_modelled("named vectors")),
        },
        None => Err(Status::invalid_argument("a point without a vector")),
    }
}

#[allow(deprecated)] // the old wire form is still what some clients send
fn vector_data(v: Vector) -> Result<Vec<f32>, Status> {
    match v.vector {
        Some(vector::Vector::Dense(dense)) => Ok(dense.data),
        Some(_) => Err(not_modelled("sparse, multi-dense and inference vectors")),
        None if v.indices.is_some() || v.vectors_count.is_some() => {
            Err(not_modelled("sparse and multi-dense vectors"))
        }
        None => Ok(v.data),
    }
}

fn check_dimension(size: u64, vector: &[f32]) -> Result<(), Status> {
    if vector.len() as u64 == size {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "Wrong input: Vector dimension error: expected dim: {size}, got {}",
            vector.len()
        )))
    }
}

fn normalise(vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm < f32::EPSILON {
        vector
    } else {
        vector.into_iter().map(|x| x / norm).collect()
    }
}

/// Cosine and Dot: similarity (higher is better; Cosine vectors are already normalised).
/// Euclid and Manhattan: distance (lower is better), as Qdrant reports them.
fn score(distance: Distance, a: &[f32], b: &[f32]) -> f32 {
    let pairs = a.iter().zip(b);
    match distance {
        Distance::Euclid => pairs.map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt(),
        Distance::Manhattan => pairs.map(|(x, y)| (x - y).abs()).sum(),
        _ => pairs.map(|(x, y)| x * y).sum(),
    }
}

fn checked_filter(filter: Option<&Filter>) -> Result<Option<&Filter>, Status> {
    if let Some(f) = filter {
        filter::validate(f).map_err(|e| Status::invalid_argument(e.0))?;
    }
    Ok(filter)
}

fn passes(filter: Option<&Filter>, id: u64, point: &StoredPoint) -> bool {
    filter.is_none_or(|f| filter::matches(f, id, &point.payload))
}

/// The ids a points selector picks, in id order. With `must_exist`, a listed id that is not
/// stored is an error (Qdrant's set_payload); otherwise it is skipped (delete).
fn selected_ids(
    c: &Collection,
    selector: Option<&PointsSelector>,
    must_exist: bool,
) -> Result<Vec<u64>, Status> {
    match selector.and_then(|s| s.points_selector_one_of.as_ref()) {
        Some(PointsSelectorOneOf::Points(list)) => {
            let mut ids = Vec::with_capacity(list.ids.len());
            for id in &list.ids {
                let id = num_id(Some(id))?;
                if must_exist && !c.points.contains_key(&id) {
                    return Err(Status::not_found(format!(
                        "Not found: No point with id {id} found"
                    )));
                }
                ids.push(id);
            }
            Ok(ids)
        }
        Some(PointsSelectorOneOf::Filter(f)) => {
            let f = checked_filter(Some(f))?;
            Ok(c.points
                .iter()
                .filter(|(id, p)| passes(f, **id, p))
                .map(|(id, _)| *id)
                .collect())
        }
        None => Err(Status::invalid_argument(
            "a request without a points selector",
        )),
    }
}

enum PayloadSelection {
    All,
    Nothing,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

impl PayloadSelection {
    fn new(selector: Option<&WithPayloadSelector>, default: bool) -> Result<Self, Status> {
        use with_payload_selector::SelectorOptions;
        let top_level = |fields: &[String]| {
            if fields.iter().any(|f| f.contains(['.', '['])) {
                Err(not_modelled("a payload selector with nested paths"))
            } else {
                Ok(fields.to_vec())
            }
        };
        Ok(match selector.and_then(|s| s.selector_options.as_ref()) {
            None if default => Self::All,
            None => Self::Nothing,
            Some(SelectorOptions::Enable(true)) => Self::All,
            Some(SelectorOptions::Enable(false)) => Self::Nothing,
            Some(SelectorOptions::Include(inc)) => Self::Include(top_level(&inc.fields)?),
            Some(SelectorOptions::Exclude(exc)) => Self::Exclude(top_level(&exc.fields)?),
        })
    }

    fn apply(&self, payload: &Payload) -> Payload {
        let keep = |key: &String| match self {
            Self::All => true,
            Self::Nothing => false,
            Self::Include(fields) => fields.contains(key),
            Self::Exclude(fields) => !fields.contains(key),
        };
        payload
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn wants_vectors(selector: Option<&WithVectorsSelector>) -> Result<bool, Status> {
    match selector.and_then(|s| s.selector_options.as_ref()) {
        None => Ok(false),
        Some(with_vectors_selector::SelectorOptions::Enable(on)) => Ok(*on),
        Some(with_vectors_selector::SelectorOptions::Include(_)) => {
            Err(not_modelled("selecting named vectors"))
        }
    }
}

fn vectors_output(vector: &[f32]) -> VectorsOutput {
    VectorsOutput {
        vectors_options: Some(vectors_output::VectorsOptions::Vector(VectorOutput {
            vector: Some(vector_output::Vector::Dense(DenseVector {
                data: vector.to_vec(),
            })),
            ..VectorOutput::default()
        })),
    }
}
