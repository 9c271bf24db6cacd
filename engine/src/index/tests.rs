use super::*;

fn clustered_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    synthetic_vectors(n, dims, seed)
}

/// The vectors keyed by position plus `first`, as the index takes them.
fn keyed(vs: &[Vec<f32>], first: i64) -> Vec<(i64, Vec<f32>)> {
    (first..).zip(vs.iter().cloned()).collect()
}

/// An index holding `items`, and the source of their exact vectors (the database's part).
fn filled(
    items: &[(i64, Vec<f32>)],
    dims: usize,
    cfg: &IndexConfig,
    exact_below: usize,
) -> (VectorIndex, MemoryVectors) {
    let idx = VectorIndex::new(dims, "m", cfg, exact_below).unwrap();
    idx.add(items).unwrap();
    (idx, MemoryVectors::new(items))
}

/// The true top `k` of `items` by f32 dot product, among the ids `keep` admits.
fn brute_force(
    items: &[(i64, Vec<f32>)],
    q: &[f32],
    k: usize,
    keep: impl Fn(i64) -> bool,
) -> Vec<i64> {
    let scored = items
        .iter()
        .filter(|(id, _)| keep(*id))
        .map(|(id, v)| (*id, dot(v, q)))
        .collect();
    exact::best(scored, k)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn cfg() -> IndexConfig {
    IndexConfig::default()
}

#[test]
fn exact_and_graph_search_find_the_same_nearest_neighbour() {
    let vs = clustered_vectors(3000, 32, 7);
    let items = keyed(&vs, 1);
    let (idx, exact) = filled(&items, 32, &cfg(), 100);
    let mut agree = 0;
    for q in vs.iter().take(50) {
        let want = brute_force(&items, q, 1, |_| true);
        assert_eq!(idx.search_exact(q, 1, &exact).unwrap()[0].0, want[0]);
        if idx.search(q, 1, None, &exact).unwrap()[0].0 == want[0] {
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
    let items = keyed(&vs, 0);
    // Through the graph (above the exact size) and through the scan (below it).
    for exact_below in [10, 10_000] {
        let (idx, mut exact) = filled(&items, 16, &cfg(), exact_below);
        idx.remove(&[0, 1, 2]).unwrap();
        exact.remove(&[0, 1, 2]);
        for q in &vs[..3] {
            let hits = idx.search(q, 20, None, &exact).unwrap();
            assert_eq!(hits.len(), 20);
            assert!(hits.iter().all(|(id, _)| *id > 2), "{hits:?}");
        }
        assert_eq!(idx.len(), 497);
    }
}

#[test]
fn the_allowed_set_restricts_results_inside_the_search() {
    let vs = clustered_vectors(400, 16, 5);
    let items = keyed(&vs, 0);
    let (idx, exact) = filled(&items, 16, &cfg(), 10);
    let allowed: HashSet<i64> = (390..400).collect();
    let hits = idx.search(&vs[0], 5, Some(&allowed), &exact).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|(id, _)| allowed.contains(id)));
}

#[test]
fn scores_are_exact_dot_products_of_the_stored_vectors_not_of_the_bf16_copies() {
    let vs = clustered_vectors(3000, 32, 17);
    let items = keyed(&vs, 0);
    for exact_below in [100, 10_000] {
        let (idx, exact) = filled(&items, 32, &cfg(), exact_below);
        for (id, score) in idx.search(&vs[0], 10, None, &exact).unwrap() {
            let want = dot(&vs[id as usize], &vs[0]);
            assert_eq!(score, want, "chunk {id} (exact_below {exact_below})");
        }
    }
}

#[test]
fn persisted_index_reloads_when_its_ids_match_and_rebuilds_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("index");
    let vs = clustered_vectors(300, 16, 9);
    let items = keyed(&vs, 0);
    let (idx, stored) = filled(&items, 16, &cfg(), 10);
    idx.persist(&idx_dir, 42).unwrap();
    // A later generation (writes that changed no vector, e.g. a full-text rebuild) still reuses it.
    for generation in [42, 43] {
        let (reloaded, outcome) =
            VectorIndex::load(&idx_dir, generation, 16, "m", &cfg(), 10, &stored).unwrap();
        assert!(outcome.reused_dump, "{outcome:?}");
        assert_eq!(reloaded.len(), 300);
        assert_eq!(reloaded.search(&vs[7], 1, None, &stored).unwrap()[0].0, 7);
        assert!(
            reloaded
                .compare_ids(&stored.ids().unwrap())
                .unwrap()
                .is_empty()
        );
    }
    // A database older than the dump, another set of ids or another model: rebuilt.
    for (generation, stored, model) in [
        (41, &items[..], "m"),
        (42, &items[1..], "m"),
        (42, &items[..], "other"),
    ] {
        let stored = MemoryVectors::new(stored);
        let (rebuilt, outcome) =
            VectorIndex::load(&idx_dir, generation, 16, model, &cfg(), 10, &stored).unwrap();
        assert!(
            !outcome.reused_dump,
            "generation {generation}, {} stored",
            stored.ids().unwrap().len()
        );
        assert!(outcome.rebuild_reason.is_some());
        assert_eq!(rebuilt.len(), stored.ids().unwrap().len());
        assert_eq!(rebuilt.search(&vs[7], 1, None, &stored).unwrap()[0].0, 7);
        assert!(
            rebuilt
                .compare_ids(&stored.ids().unwrap())
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn a_rebuild_reads_the_stored_vectors_a_slice_at_a_time() {
    /// Counts the most vectors one call handed out.
    struct Counting(MemoryVectors, std::sync::atomic::AtomicUsize);
    impl VectorSource for Counting {
        fn vectors(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>> {
            self.1
                .fetch_max(ids.len(), std::sync::atomic::Ordering::Relaxed);
            self.0.vectors(ids)
        }
    }
    impl StoredVectors for Counting {
        fn ids(&self) -> Result<Vec<i64>> {
            self.0.ids()
        }
        fn for_each_slice(
            &self,
            slice: usize,
            f: &mut crate::index::SliceVisitor<'_>,
        ) -> Result<()> {
            self.0.for_each_slice(slice, &mut |part| {
                self.1
                    .fetch_max(part.len(), std::sync::atomic::Ordering::Relaxed);
                f(part)
            })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let vs = clustered_vectors(10_000, 8, 3);
    let stored = Counting(MemoryVectors::new(&keyed(&vs, 0)), Default::default());
    let (idx, outcome) =
        VectorIndex::load(&dir.path().join("index"), 1, 8, "m", &cfg(), 10, &stored).unwrap();
    assert!(!outcome.reused_dump);
    assert_eq!(idx.len(), 10_000);
    let most = stored.1.load(std::sync::atomic::Ordering::Relaxed);
    assert!(most <= 4096, "a rebuild held {most} stored vectors at once");
}

#[test]
fn the_journal_replays_replaced_removed_and_added_vectors_onto_the_saved_graph() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("index");
    let vs = clustered_vectors(400, 16, 21);
    let (idx, _) = filled(&keyed(&vs[..300], 0), 16, &cfg(), 10);
    idx.persist(&idx_dir, 1).unwrap();
    let journal = IndexJournal::new(&idx_dir);
    // chunk 5 now has 350's vector (a reused id), 10 is gone, 300 is new; 999 was journaled
    // by a transaction that rolled back
    journal.append(&[5, 10, 300, 999]).unwrap();
    assert_eq!(journal.len(), 4);
    let mut items = keyed(&vs[..301], 0);
    items[5].1 = vs[350].clone();
    items.remove(10);
    let stored = MemoryVectors::new(&items);
    let (loaded, outcome) = VectorIndex::load(&idx_dir, 5, 16, "m", &cfg(), 10, &stored).unwrap();
    assert!(outcome.reused_dump, "{outcome:?}");
    assert_eq!(outcome.replayed, 4);
    assert_eq!(loaded.len(), 300);
    assert_eq!(loaded.search(&vs[350], 1, None, &stored).unwrap()[0].0, 5);
    assert_eq!(loaded.search(&vs[300], 1, None, &stored).unwrap()[0].0, 300);
    assert!(
        loaded
            .search(&vs[10], 5, None, &stored)
            .unwrap()
            .iter()
            .all(|(id, _)| *id != 10)
    );
    assert!(
        loaded
            .compare_ids(&stored.ids().unwrap())
            .unwrap()
            .is_empty()
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
    assert!(
        idx.search(&[0.0; 3], 1, None, &MemoryVectors::default())
            .is_err()
    );
}

#[test]
fn replacing_a_vector_moves_its_id_to_the_new_position() {
    let vs = clustered_vectors(600, 16, 11);
    let items = keyed(&vs, 0);
    let (idx, mut exact) = filled(&items, 16, &cfg(), 10);
    // Chunk 5 gets the vector of chunk 500: a search for that vector now finds both, and a
    // search for 5's old vector no longer returns 5 first.
    idx.add(&[(5, vs[500].clone())]).unwrap();
    exact.put(&[(5, vs[500].clone())]);
    assert_eq!(idx.len(), 600);
    let hits = idx.search(&vs[500], 2, None, &exact).unwrap();
    let ids: HashSet<i64> = hits.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, HashSet::from([5, 500]), "{hits:?}");
    assert_ne!(idx.search(&vs[5], 1, None, &exact).unwrap()[0].0, 5);
}

#[test]
fn wide_filters_search_the_graph_and_still_respect_the_allowed_set() {
    let vs = clustered_vectors(6000, 16, 13);
    let items = keyed(&vs, 0);
    let (idx, exact) = filled(&items, 16, &cfg(), 10);
    let allowed: HashSet<i64> = (0..6000).filter(|i| i % 2 == 0).collect();
    assert!(allowed.len() >= NARROW_FILTER);
    let hits = idx.search(&vs[1], 10, Some(&allowed), &exact).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|(id, _)| id % 2 == 0), "{hits:?}");
    assert_eq!(
        idx.search(&vs[2], 1, Some(&allowed), &exact).unwrap()[0].0,
        2
    );
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
    let items = keyed(&vs, 0);
    let (idx, exact) = filled(&items, 32, &poor_graph(), 5000);
    let allowed: HashSet<i64> = (0..4000).filter(|i| i % 4 != 0).collect();
    assert!(allowed.len() >= NARROW_FILTER);
    for q in vs.iter().step_by(97).take(20) {
        let want = brute_force(&items, q, 10, |id| allowed.contains(&id));
        let got: Vec<i64> = idx
            .search(q, 10, Some(&allowed), &exact)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            got, want,
            "a broad filter on a small collection was not exact"
        );
        let unfiltered: Vec<i64> = idx
            .search(q, 10, None, &exact)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(unfiltered, brute_force(&items, q, 10, |_| true));
    }
}

#[test]
fn a_graph_search_that_finds_fewer_than_top_k_falls_back_to_an_exact_scan() {
    // Above the exact size, with a poor graph: the walk ends before it has found top_k allowed
    // vectors, though the filter admits thousands.
    let vs = clustered_vectors(6000, 32, 13);
    let items = keyed(&vs, 0);
    let (idx, exact) = filled(&items, 32, &poor_graph(), 100);
    let allowed: HashSet<i64> = (0..6000).filter(|i| i % 2 == 1).collect();
    for (n, q) in vs.iter().step_by(301).take(20).enumerate() {
        let k = 50;
        let got = idx.search(q, k, Some(&allowed), &exact).unwrap();
        assert_eq!(got.len(), k, "query {n}: {} of {k} hits", got.len());
        assert!(got.iter().all(|(id, _)| allowed.contains(id)));
        let all = idx.search(q, k, None, &exact).unwrap();
        assert_eq!(
            all.len(),
            k,
            "query {n} without a filter: {} of {k} hits",
            all.len()
        );
    }
}

#[test]
fn the_index_holds_no_f32_copy_of_its_vectors() {
    // bf16 vectors (2 bytes a value) and links: well under the 4 bytes a value an f32 copy
    // beside the graph would add.
    let dims = 384;
    let vs = clustered_vectors(5000, dims, 23);
    let (idx, _) = filled(&keyed(&vs, 0), dims, &cfg(), 10);
    let per_vector = idx.stats().memory_bytes / 5000;
    assert!(
        per_vector < dims * 4,
        "{per_vector} bytes per vector of {dims} dimensions"
    );
}

#[test]
fn many_concurrent_searches_each_get_an_answer() {
    // Two cores here: usearch's default of a context per core failed the third search at once.
    let vs = clustered_vectors(500, 16, 29);
    let items = keyed(&vs, 0);
    for exact_below in [10, 10_000] {
        let (idx, exact) = filled(&items, 16, &cfg(), exact_below);
        let barrier = std::sync::Barrier::new(24);
        std::thread::scope(|s| {
            for q in &vs[..24] {
                let (idx, exact, barrier) = (&idx, &exact, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..20 {
                        let hits = idx.search(q, 10, None, exact).unwrap();
                        assert_eq!(hits.len(), 10);
                    }
                });
            }
        });
    }
}
