//! The tonic services: qdrant-client's generated `Collections`, `Points` and `Qdrant` (health)
//! server traits, each call counted, checked for "down" and for the API key, then handed to
//! [`State`] under the lock. Calls the double does not model answer `unimplemented`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use qdrant_client::qdrant::collections_server::Collections;
use qdrant_client::qdrant::points_server::Points;
use qdrant_client::qdrant::qdrant_server::Qdrant;
use qdrant_client::qdrant::{
    ChangeAliases, ClearPayloadPoints, CollectionClusterInfoRequest, CollectionClusterInfoResponse,
    CollectionExistsRequest, CollectionExistsResponse, CollectionOperationResponse, CountPoints,
    CountResponse, CreateCollection, CreateFieldIndexCollection, CreateShardKeyRequest,
    CreateShardKeyResponse, CreateVectorNameRequest, DeleteCollection, DeleteFieldIndexCollection,
    DeletePayloadPoints, DeletePointVectors, DeletePoints, DeleteShardKeyRequest,
    DeleteShardKeyResponse, DeleteVectorNameRequest, DiscoverBatchPoints, DiscoverBatchResponse,
    DiscoverPoints, DiscoverResponse, FacetCounts, FacetResponse, GetCollectionInfoRequest,
    GetCollectionInfoResponse, GetPoints, GetResponse, HealthCheckReply, HealthCheckRequest,
    ListAliasesRequest, ListAliasesResponse, ListCollectionAliasesRequest, ListCollectionsRequest,
    ListCollectionsResponse, ListShardKeysRequest, ListShardKeysResponse, PointsOperationResponse,
    QueryBatchPoints, QueryBatchResponse, QueryGroupsResponse, QueryPointGroups, QueryPoints,
    QueryResponse, RecommendBatchPoints, RecommendBatchResponse, RecommendGroupsResponse,
    RecommendPointGroups, RecommendPoints, RecommendResponse, ScrollPoints, ScrollResponse,
    SearchBatchPoints, SearchBatchResponse, SearchGroupsResponse, SearchMatrixOffsetsResponse,
    SearchMatrixPairsResponse, SearchMatrixPoints, SearchPointGroups, SearchPoints, SearchResponse,
    SetPayloadPoints, UpdateBatchPoints, UpdateBatchResponse, UpdateCollection,
    UpdateCollectionClusterSetupRequest, UpdateCollectionClusterSetupResponse, UpdatePointVectors,
    UpsertPoints,
};
use tonic::{Request, Response, Status};

use crate::state::State;

/// The metadata key qdrant-client sends the API key under (`qdrant_client::auth::API_KEY_HEADER`).
const API_KEY_HEADER: &str = "api-key";

/// The version the health check reports: the client's own, so its compatibility check passes.
const REPORTED_VERSION: &str = "1.20.0";

pub(crate) struct Shared {
    state: Mutex<State>,
    down: AtomicBool,
    api_key: Option<String>,
}

impl Shared {
    pub(crate) fn new(api_key: Option<String>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            down: AtomicBool::new(false),
            api_key,
        }
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, Status> {
        self.state
            .lock()
            .map_err(|_| Status::internal("qdrant-double: state lock poisoned"))
    }

    /// The state for the test-side inspection API: a poisoned lock still holds usable data.
    pub(crate) fn inspect(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the call, then refuses it when the double is down or the API key is wrong.
    fn begin<T>(&self, rpc: &str, request: &Request<T>, needs_key: bool) -> Result<(), Status> {
        *self.state()?.calls.entry(rpc.to_owned()).or_default() += 1;
        if self.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("qdrant-double: down"));
        }
        if let Some(key) = self.api_key.as_deref().filter(|_| needs_key) {
            let given = request
                .metadata()
                .get(API_KEY_HEADER)
                .and_then(|v| v.to_str().ok());
            if given != Some(key) {
                return Err(Status::unauthenticated(
                    "qdrant-double: missing or wrong api-key",
                ));
            }
        }
        Ok(())
    }

    fn handle<Req, Resp>(
        &self,
        rpc: &str,
        request: Request<Req>,
        op: impl FnOnce(&mut State, Req) -> Result<Resp, Status>,
    ) -> Result<Response<Resp>, Status> {
        self.begin(rpc, &request, true)?;
        let mut state = self.state()?;
        op(&mut state, request.into_inner()).map(Response::new)
    }

    fn refuse<Req, Resp>(
        &self,
        rpc: &str,
        request: &Request<Req>,
    ) -> Result<Response<Resp>, Status> {
        self.begin(rpc, request, true)?;
        Err(Status::unimplemented(format!(
            "qdrant-double: {rpc} is not modelled"
        )))
    }
}

/// The key `calls` counts an RPC under: `collections.<method>`, `points.<method>` or
/// `qdrant.<method>`, with the method named as in qdrant-client's generated server trait.
pub(crate) fn call_key(rpc: &str) -> Vec<String> {
    if rpc.contains('.') {
        return vec![rpc.to_owned()];
    }
    match rpc {
        // The two method names both services have: the short name is the one the engine uses.
        "get" => vec!["collections.get".into()],
        "delete" => vec!["points.delete".into()],
        "delete_collection" => vec!["collections.delete".into()],
        "get_points" => vec!["points.get".into()],
        // Every other method name belongs to one service only.
        _ => ["collections", "points", "qdrant"]
            .iter()
            .map(|service| format!("{service}.{rpc}"))
            .collect(),
    }
}

#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) shared: Arc<Shared>,
}

macro_rules! grpc_service {
    (
        impl $trait:ident as $prefix:literal;
        modelled { $($m:ident($mreq:ty) -> $mresp:ty => $op:path;)* }
        not_modelled { $($n:ident($nreq:ty) -> $nresp:ty;)* }
    ) => {
        #[tonic::async_trait]
        impl $trait for Service {
            $(
                async fn $m(&self, request: Request<$mreq>) -> Result<Response<$mresp>, Status> {
                    self.shared.handle(concat!($prefix, ".", stringify!($m)), request, $op)
                }
            )*
            $(
                async fn $n(&self, request: Request<$nreq>) -> Result<Response<$nresp>, Status> {
                    self.shared.refuse(concat!($prefix, ".", stringify!($n)), &request)
                }
            )*
        }
    };
}

grpc_service! {
    impl Collections as "collections";
    modelled {
        get(GetCollectionInfoRequest) -> GetCollectionInfoResponse => State::get;
        list(ListCollectionsRequest) -> ListCollectionsResponse => State::list;
        create(CreateCollection) -> CollectionOperationResponse => State::create;
        delete(DeleteCollection) -> CollectionOperationResponse => State::delete_collection;
        collection_exists(CollectionExistsRequest) -> CollectionExistsResponse
            => State::collection_exists;
    }
    not_modelled {
        update(UpdateCollection) -> CollectionOperationResponse;
        update_aliases(ChangeAliases) -> CollectionOperationResponse;
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        list_aliases(ListAliasesRequest) -> ListAliasesResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest)
            -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

grpc_service! {
    impl Points as "points";
    modelled {
        upsert(UpsertPoints) -> PointsOperationResponse => State::upsert;
        delete(DeletePoints) -> PointsOperationResponse => State::delete;
        set_payload(SetPayloadPoints) -> PointsOperationResponse => State::set_payload;
        create_field_index(CreateFieldIndexCollection) -> PointsOperationResponse
            => State::create_field_index;
        scroll(ScrollPoints) -> ScrollResponse => State::scroll;
        count(CountPoints) -> CountResponse => State::count;
        query(QueryPoints) -> QueryResponse => State::query;
    }
    not_modelled {
        get(GetPoints) -> GetResponse;
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search(SearchPoints) -> SearchResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query_batch(QueryBatchPoints) -> QueryBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}

#[tonic::async_trait]
impl Qdrant for Service {
    /// The health check needs no API key (like Qdrant's), but answers `unavailable` when down.
    async fn health_check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckReply>, Status> {
        self.shared.begin("qdrant.health_check", &request, false)?;
        Ok(Response::new(HealthCheckReply {
            title: "qdrant-double".into(),
            version: REPORTED_VERSION.into(),
            commit: None,
        }))
    }
}
