use super::*;

fn clustered_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    synthetic_vectors(n, dims, seed)
}

fn cfg() -> IndexConfig {
    IndexConfig::default()
}

#[test]
fn exact_and_graph_search_find_the_same_nearest_neighbour() {
    let vs = clustered_vectors(3000, 32, 7);
    let idx = VectorIndex::new(32, "m", &cfg(), 100);
    let items: Vec<(i64, Vec<f32>)> = vs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as i64 + 1, v))
        .collect();
    idx.add(&items).unwrap();
    let mut agree = 0;
    for q in vs.iter().take(50) {
        let exact = idx.search_exact(q, 1).unwrap();
        let approx = idx.search(q, 1, None).unwrap();
        if exact[0].0 == approx[0].0 {
            agree += 1;
        }
    }
    assert!(
        agree >= 48,
        "graph agreed with exact search on {agree}/50 queries"
    );
}

#[test]
fn removed_vectors_never_come_back() {
    let vs = clustered_vectors(500, 16, 3);
    let idx = VectorIndex::new(16, "m", &cfg(), 10);
    let items: Vec<(i64, Vec<f32>)> = vs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as i64, v))
        .collect();
    idx.add(&items).unwrap();
    idx.remove(&[0, 1, 2]).unwrap();
    for q in &vs[..3] {
        let hits = idx.search(q, 20, None).unwrap();
        assert!(hits.iter().all(|(id, _)| *id > 2), "{hits:?}");
    }
    assert_eq!(idx.len(), 497);
}

#[test]
fn the_allowed_set_restricts_results_inside_the_search() {
    let vs = clustered_vectors(400, 16, 5);
    let idx = VectorIndex::new(16, "m", &cfg(), 10);
    let items: Vec<(i64, Vec<f32>)> = vs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as i64, v))
        .collect();
    idx.add(&items).unwrap();
    let allowed: HashSet<i64> = (390..400).collect();
    let hits = idx.search(&vs[0], 5, Some(&allowed)).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|(id, _)| allowed.contains(id)));
}

#[test]
fn persisted_index_reloads_when_fresh_and_rebuilds_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("index");
    let vs = clustered_vectors(300, 16, 9);
    let items: Vec<(i64, Vec<f32>)> = vs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as i64, v))
        .collect();
    let idx = VectorIndex::new(16, "m", &cfg(), 10);
    idx.add(&items).unwrap();
    idx.persist(&idx_dir, 42).unwrap();
    let (reloaded, fresh) =
        VectorIndex::load(&idx_dir, 42, 16, "m", &cfg(), 10, items.clone()).unwrap();
    assert!(fresh);
    assert_eq!(reloaded.search(&vs[7], 1, None).unwrap()[0].0, 7);
    let (rebuilt, fresh) = VectorIndex::load(&idx_dir, 43, 16, "m", &cfg(), 10, items).unwrap();
    assert!(!fresh);
    assert_eq!(rebuilt.search(&vs[7], 1, None).unwrap()[0].0, 7);
}

#[test]
fn wrong_dimensions_are_rejected() {
    let idx = VectorIndex::new(8, "m", &cfg(), 10);
    assert!(idx.add(&[(1, vec![0.0; 4])]).is_err());
    assert!(idx.search(&[0.0; 3], 1, None).is_err());
}
