use super::*;

fn clustered_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    synthetic_vectors(n, dims, seed)
}

/// The vectors keyed by position plus `first`, as the index takes them.
fn keyed(vs: &[Vec<f32>], first: i64) -> Vec<(i64, Vec<f32>)> {
    (first..).zip(vs.iter().cloned()).collect()
}

fn cfg() -> IndexConfig {
    IndexConfig::default()
}

#[test]
fn exact_and_graph_search_find_the_same_nearest_neighbour() {
    let vs = clustered_vectors(3000, 32, 7);
    let idx = VectorIndex::new(32, "m", &cfg(), 100).unwrap();
    let items = keyed(&vs, 1);
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
    let idx = VectorIndex::new(16, "m", &cfg(), 10).unwrap();
    let items = keyed(&vs, 0);
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
    let idx = VectorIndex::new(16, "m", &cfg(), 10).unwrap();
    let items = keyed(&vs, 0);
    idx.add(&items).unwrap();
    let allowed: HashSet<i64> = (390..400).collect();
    let hits = idx.search(&vs[0], 5, Some(&allowed)).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|(id, _)| allowed.contains(id)));
}

#[test]
fn persisted_index_reloads_when_its_ids_match_and_rebuilds_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("index");
    let vs = clustered_vectors(300, 16, 9);
    let items = keyed(&vs, 0);
    let idx = VectorIndex::new(16, "m", &cfg(), 10).unwrap();
    idx.add(&items).unwrap();
    idx.persist(&idx_dir, 42).unwrap();
    // A later generation (writes that changed no vector, e.g. a full-text rebuild) still reuses it.
    for generation in [42, 43] {
        let (reloaded, outcome) =
            VectorIndex::load(&idx_dir, generation, 16, "m", &cfg(), 10, items.clone()).unwrap();
        assert!(outcome.reused_dump, "{outcome:?}");
        assert_eq!(reloaded.len(), 300);
        assert_eq!(reloaded.search(&vs[7], 1, None).unwrap()[0].0, 7);
    }
    // A database older than the dump, another set of ids or another model: rebuilt.
    for (generation, stored, model) in [
        (41, &items[..], "m"),
        (42, &items[1..], "m"),
        (42, &items[..], "other"),
    ] {
        let (rebuilt, outcome) =
            VectorIndex::load(&idx_dir, generation, 16, model, &cfg(), 10, stored.to_vec())
                .unwrap();
        assert!(
            !outcome.reused_dump,
            "generation {generation}, {} stored",
            stored.len()
        );
        assert!(outcome.rebuild_reason.is_some());
        assert_eq!(rebuilt.len(), stored.len());
        assert_eq!(rebuilt.search(&vs[7], 1, None).unwrap()[0].0, 7);
    }
}

#[test]
fn the_journal_replays_replaced_removed_and_added_vectors_onto_the_saved_graph() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("index");
    let vs = clustered_vectors(400, 16, 21);
    let idx = VectorIndex::new(16, "m", &cfg(), 10).unwrap();
    idx.add(&keyed(&vs[..300], 0)).unwrap();
    idx.persist(&idx_dir, 1).unwrap();
    let journal = IndexJournal::new(&idx_dir);
    // chunk 5 now has 350's vector (a reused id), 10 is gone, 300 is new; 999 was journaled
    // by a transaction that rolled back
    journal.append(&[5, 10, 300, 999]).unwrap();
    assert_eq!(journal.len(), 4);
    let mut stored = keyed(&vs[..301], 0);
    stored[5].1 = vs[350].clone();
    stored.remove(10);
    let (loaded, outcome) = VectorIndex::load(&idx_dir, 5, 16, "m", &cfg(), 10, stored).unwrap();
    assert!(outcome.reused_dump, "{outcome:?}");
    assert_eq!(outcome.replayed, 4);
    assert_eq!(loaded.len(), 300);
    assert_eq!(loaded.search(&vs[350], 1, None).unwrap()[0].0, 5);
    assert_eq!(loaded.search(&vs[300], 1, None).unwrap()[0].0, 300);
    assert!(
        loaded
            .search(&vs[10], 5, None)
            .unwrap()
            .iter()
            .all(|(id, _)| *id != 10)
    );
    // a full save starts the journal afresh
    loaded.persist(&idx_dir, 5).unwrap();
    journal.reset_count();
    assert!(journal.is_empty());
}

#[test]
fn nothing_is_journaled_without_a_saved_graph() {
    let dir = tempfile::tempdir().unwrap();
    let journal = IndexJournal::new(&dir.path().join("index"));
    journal.append(&[1, 2]).unwrap();
    assert!(journal.is_empty());
    assert!(!dir.path().join("index").exists());
}

#[test]
fn wrong_dimensions_are_rejected() {
    let idx = VectorIndex::new(8, "m", &cfg(), 10).unwrap();
    assert!(idx.add(&[(1, vec![0.0; 4])]).is_err());
    assert!(idx.search(&[0.0; 3], 1, None).is_err());
}

#[test]
fn replacing_a_vector_moves_its_id_to_the_new_position() {
    let vs = clustered_vectors(600, 16, 11);
    let idx = VectorIndex::new(16, "m", &cfg(), 10).unwrap();
    let items = keyed(&vs, 0);
    idx.add(&items).unwrap();
    // Chunk 5 gets the vector of chunk 500: a search for that vector now finds both, and a
    // search for 5's old vector no longer returns 5 first.
    idx.add(&[(5, vs[500].clone())]).unwrap();
    assert_eq!(idx.len(), 600);
    let hits = idx.search(&vs[500], 2, None).unwrap();
    let ids: HashSet<i64> = hits.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, HashSet::from([5, 500]), "{hits:?}");
    assert_ne!(idx.search(&vs[5], 1, None).unwrap()[0].0, 5);
}

#[test]
fn wide_filters_search_the_graph_and_still_respect_the_allowed_set() {
    let vs = clustered_vectors(6000, 16, 13);
    let idx = VectorIndex::new(16, "m", &cfg(), 10).unwrap();
    let items = keyed(&vs, 0);
    idx.add(&items).unwrap();
    let allowed: HashSet<i64> = (0..6000).filter(|i| i % 2 == 0).collect();
    assert!(allowed.len() >= NARROW_FILTER);
    let hits = idx.search(&vs[1], 10, Some(&allowed)).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|(id, _)| id % 2 == 0), "{hits:?}");
    assert_eq!(idx.search(&vs[2], 1, Some(&allowed)).unwrap()[0].0, 2);
}

#[test]
fn exact_search_scores_are_dot_products() {
    let vs = clustered_vectors(50, 8, 17);
    let idx = VectorIndex::new(8, "m", &cfg(), 100).unwrap();
    let items = keyed(&vs, 0);
    idx.add(&items).unwrap();
    for (id, score) in idx.search_exact(&vs[0], 5).unwrap() {
        let want = exact::dot(&vs[id as usize], &vs[0]);
        assert!((score - want).abs() < 1e-4, "{id}: {score} vs {want}");
    }
}

/// A graph built and searched with the narrowest settings usearch takes: its answers are
/// visibly approximate, so a test can tell whether a search went through it.
fn poor_graph() -> IndexConfig {
    IndexConfig {
        m: 2,
        ef_construction: 2,
        ef_search: 1,
        ..IndexConfig::default()
    }
}

#[test]
fn a_broad_filter_on_a_collection_below_the_exact_size_is_scored_exactly() {
    // 4,000 vectors: below `exact_search_below` (5,000 here), so unfiltered searches scan them
    // exactly; a filter admitting 3,000 (over NARROW_FILTER) must not send them to the graph.
    let vs = clustered_vectors(4000, 32, 11);
    let idx = VectorIndex::new(32, "m", &poor_graph(), 5000).unwrap();
    idx.add(&keyed(&vs, 0)).unwrap();
    let allowed: HashSet<i64> = (0..4000).filter(|i| i % 4 != 0).collect();
    assert!(allowed.len() >= NARROW_FILTER);
    for q in vs.iter().step_by(97).take(20) {
        let want: Vec<i64> = idx
            .search_exact(q, 4000)
            .unwrap()
            .into_iter()
            .filter(|(id, _)| allowed.contains(id))
            .take(10)
            .map(|(id, _)| id)
            .collect();
        let got: Vec<i64> = idx
            .search(q, 10, Some(&allowed))
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            got, want,
            "a broad filter on a small collection was not exact"
        );
    }
}

#[test]
fn a_graph_search_that_finds_fewer_than_top_k_falls_back_to_an_exact_scan() {
    // Above the exact size, with a poor graph: the walk ends before it has found top_k allowed
    // vectors, though the filter admits thousands.
    let vs = clustered_vectors(6000, 32, 13);
    let idx = VectorIndex::new(32, "m", &poor_graph(), 100).unwrap();
    idx.add(&keyed(&vs, 0)).unwrap();
    let allowed: HashSet<i64> = (0..6000).filter(|i| i % 2 == 1).collect();
    for (n, q) in vs.iter().step_by(301).take(20).enumerate() {
        let k = 50;
        let got = idx.search(q, k, Some(&allowed)).unwrap();
        assert_eq!(got.len(), k, "query {n}: {} of {k} hits", got.len());
        assert!(got.iter().all(|(id, _)| allowed.contains(id)));
        let all = idx.search(q, k, None).unwrap();
        assert_eq!(
            all.len(),
            k,
            "query {n} without a filter: {} of {k} hits",
            all.len()
        );
    }
}
