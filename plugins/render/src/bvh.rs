//! Bounding volume hierarchy: a binned-SAH build over triangle bounds,
//! flattened depth-first for upload (children of a node are adjacent).

use bytemuck::{Pod, Zeroable};

use crate::math::V3;

/// Triangles in a leaf the build aims for.
pub const MAX_LEAF: usize = 4;
/// Most triangles in any leaf (where SAH finds no split worth making).
pub const MAX_LEAF_COUNT: usize = 16;
/// Deepest level split by SAH; below it nodes are halved, so the tree is
/// at most about MAX_DEPTH + log2(triangles / MAX_LEAF_COUNT) deep (the
/// traversals need no stack, so depth costs only time).
pub const MAX_DEPTH: usize = 40;
const BINS: usize = 12;

/// A flattened node (32 bytes, as in `render.wgsl`). Interior: no
/// triangles, and the children are `a` and `a + 1`. Leaf: triangles
/// `a .. a + leaf_count()`. Every node also links to the node a traversal
/// visits once it is done with this one's subtree ([`Node::miss`]), so
/// rays walk the tree without a stack.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Node {
    /// Box minimum.
    pub min: [f32; 3],
    /// First child or first triangle.
    pub a: u32,
    /// Box maximum.
    pub max: [f32; 3],
    /// Triangles in a leaf (0 for an interior node) in the low
    /// [`COUNT_BITS`] bits, the miss link above them.
    pub count: u32,
}

/// Bits of [`Node::count`] that hold the leaf's triangle count.
pub const COUNT_BITS: u32 = 5;
const _: () = assert!(MAX_LEAF_COUNT < 1 << COUNT_BITS);

/// The miss link that ends a traversal.
pub const END: u32 = u32::MAX >> COUNT_BITS;

impl Node {
    /// Triangles in this leaf (0: an interior node).
    pub fn leaf_count(&self) -> u32 {
        self.count & ((1 << COUNT_BITS) - 1)
    }
    /// The node to visit after this one's subtree ([`END`] after the last).
    pub fn miss(&self) -> u32 {
        self.count >> COUNT_BITS
    }
}

/// Sets every node's miss link: a left child's is its sibling, a right
/// child's (and the root's) its parent's.
fn link(nodes: &mut [Node]) {
    let mut work = vec![(0usize, END)];
    while let Some((i, miss)) = work.pop() {
        nodes[i].count = nodes[i].leaf_count() | miss << COUNT_BITS;
        if nodes[i].leaf_count() == 0 {
            let a = nodes[i].a;
            work.push((a as usize, a + 1));
            work.push((a as usize + 1, miss));
        }
    }
}

/// A built hierarchy: nodes (root first) and the triangle order they index.
#[derive(Debug, Clone)]
pub struct Bvh {
    /// Nodes, root at 0.
    pub nodes: Vec<Node>,
    /// `order[i]` is the original index of the i-th triangle in leaf order.
    pub order: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Aabb {
    min: V3,
    max: V3,
}

impl Aabb {
    const EMPTY: Aabb = Aabb {
        min: V3 {
            x: f32::INFINITY,
            y: f32::INFINITY,
            z: f32::INFINITY,
        },
        max: V3 {
            x: f32::NEG_INFINITY,
            y: f32::NEG_INFINITY,
            z: f32::NEG_INFINITY,
        },
    };
    fn grow(&mut self, o: &Aabb) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
    fn area(&self) -> f32 {
        let d = self.max - self.min;
        if d.x < 0.0 {
            0.0
        } else {
            2.0 * (d.x * d.y + d.y * d.z + d.z * d.x)
        }
    }
}

/// Builds a BVH over triangles given by their corners.
pub fn build(tris: &[[V3; 3]]) -> Bvh {
    let boxes: Vec<Aabb> = tris
        .iter()
        .map(|t| Aabb {
            min: t[0].min(t[1]).min(t[2]),
            max: t[0].max(t[1]).max(t[2]),
        })
        .collect();
    let centers: Vec<V3> = boxes.iter().map(|b| (b.min + b.max) * 0.5).collect();
    let mut order: Vec<u32> = (0..tris.len() as u32).collect();
    let mut nodes = vec![Node::zeroed()];
    // (node index, first, count, depth)
    let mut work = vec![(0usize, 0usize, tris.len(), 0usize)];
    while let Some((ni, first, count, depth)) = work.pop() {
        let items = &mut order[first..first + count];
        let mut bounds = Aabb::EMPTY;
        let mut cbounds = Aabb::EMPTY;
        for &i in items.iter() {
            bounds.grow(&boxes[i as usize]);
            let c = centers[i as usize];
            cbounds.grow(&Aabb { min: c, max: c });
        }
        let leaf = Node {
            min: bounds.min.to_array(),
            a: first as u32,
            max: bounds.max.to_array(),
            count: count as u32,
        };
        let split = if count <= MAX_LEAF {
            None
        } else if depth >= MAX_DEPTH {
            // Deep enough for SAH (whose chains of thin splits could make
            // a build quadratic): halves along the widest axis, down to
            // leaves that fit a node's count.
            let d = cbounds.max - cbounds.min;
            let axis = if d.x >= d.y && d.x >= d.z {
                0
            } else if d.y >= d.z {
                1
            } else {
                2
            };
            (count > MAX_LEAF_COUNT).then_some((axis, f32::INFINITY))
        } else {
            // No useful SAH split but too many triangles for a leaf (e.g.
            // all centers equal): an infinite position sends everything
            // left, which the median fallback below turns into halves.
            best_split(items, &boxes, &centers, &cbounds, &bounds)
                .or((count > MAX_LEAF_COUNT).then_some((0, f32::INFINITY)))
        };
        let Some((axis, pos)) = split else {
            nodes[ni] = leaf;
            continue;
        };
        // Partition by bin position; a split that leaves one side empty
        // (all centers equal) falls back to the median.
        let mut mid = partition(items, |i| centers[i as usize].axis(axis) < pos);
        if mid == 0 || mid == count {
            items.sort_by(|&a, &b| {
                centers[a as usize]
                    .axis(axis)
                    .total_cmp(&centers[b as usize].axis(axis))
                    .then(a.cmp(&b))
            });
            mid = count / 2;
        }
        let left = nodes.len();
        nodes.push(Node::zeroed());
        nodes.push(Node::zeroed());
        nodes[ni] = Node {
            min: bounds.min.to_array(),
            a: left as u32,
            max: bounds.max.to_array(),
            count: 0,
        };
        work.push((left + 1, first + mid, count - mid, depth + 1));
        work.push((left, first, mid, depth + 1));
    }
    link(&mut nodes);
    Bvh { nodes, order }
}

/// In-place stable-enough partition; returns the number of items for which `pred` holds.
fn partition(items: &mut [u32], pred: impl Fn(u32) -> bool) -> usize {
    let mut mid = 0;
    for i in 0..items.len() {
        if pred(items[i]) {
            items.swap(i, mid);
            mid += 1;
        }
    }
    mid
}

/// The best binned-SAH split (axis, position), or `None` when a leaf is cheaper.
fn best_split(
    items: &[u32],
    boxes: &[Aabb],
    centers: &[V3],
    cbounds: &Aabb,
    bounds: &Aabb,
) -> Option<(usize, f32)> {
    let mut best: Option<(f32, usize, f32)> = None;
    for axis in 0..3 {
        let (lo, hi) = (cbounds.min.axis(axis), cbounds.max.axis(axis));
        if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let scale = BINS as f32 / (hi - lo);
        let mut bins = [(Aabb::EMPTY, 0usize); BINS];
        for &i in items {
            let b = (((centers[i as usize].axis(axis) - lo) * scale) as usize).min(BINS - 1);
            bins[b].0.grow(&boxes[i as usize]);
            bins[b].1 += 1;
        }
        let mut right_area = [0.0f32; BINS];
        let mut right_count = [0usize; BINS];
        let (mut acc, mut n) = (Aabb::EMPTY, 0);
        for b in (1..BINS).rev() {
            acc.grow(&bins[b].0);
            n += bins[b].1;
            right_area[b] = acc.area();
            right_count[b] = n;
        }
        let (mut acc, mut n) = (Aabb::EMPTY, 0);
        for b in 0..BINS - 1 {
            acc.grow(&bins[b].0);
            n += bins[b].1;
            if n == 0 || right_count[b + 1] == 0 {
                continue;
            }
            let cost = acc.area() * n as f32 + right_area[b + 1] * right_count[b + 1] as f32;
            if best.is_none_or(|(c, _, _)| cost < c) {
                best = Some((cost, axis, lo + (b + 1) as f32 / scale));
            }
        }
    }
    let (cost, axis, pos) = best?;
    // SAH: traversal cost 1, intersection cost 1 per triangle.
    let leaf_cost = bounds.area() * items.len() as f32;
    (cost + bounds.area() < leaf_cost || items.len() > 4 * MAX_LEAF).then_some((axis, pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::v3;
    use crate::rng::SampleRng;
    use crate::trace::{Ray, intersect_brute, intersect_bvh, occluded};

    fn random_tris(n: u32) -> Vec<[V3; 3]> {
        let r = |i: u32, d: u32| SampleRng::new(9, i, 0).get(d);
        (0..n)
            .map(|i| {
                let c = v3(
                    r(i, 0) * 10.0 - 5.0,
                    r(i, 1) * 10.0 - 5.0,
                    r(i, 2) * 10.0 - 5.0,
                );
                let s = 0.2 + r(i, 3);
                [
                    c,
                    c + v3(s * r(i, 4), s, 0.1 * r(i, 5)),
                    c + v3(s, s * r(i, 6), s * r(i, 7)),
                ]
            })
            .collect()
    }

    #[test]
    fn every_triangle_is_in_exactly_one_leaf_inside_its_boxes() {
        let tris = random_tris(500);
        let bvh = build(&tris);
        let mut seen = vec![0; tris.len()];
        let mut stack = vec![(0usize, 0usize)];
        while let Some((ni, depth)) = stack.pop() {
            let n = bvh.nodes[ni];
            assert!(depth <= MAX_DEPTH + 8);
            if n.leaf_count() > 0 {
                for &t in &bvh.order[n.a as usize..(n.a + n.leaf_count()) as usize] {
                    seen[t as usize] += 1;
                    for p in tris[t as usize] {
                        assert!(p.x >= n.min[0] && p.y >= n.min[1] && p.z >= n.min[2]);
                        assert!(p.x <= n.max[0] && p.y <= n.max[1] && p.z <= n.max[2]);
                    }
                }
            } else {
                stack.push((n.a as usize, depth + 1));
                stack.push((n.a as usize + 1, depth + 1));
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
    }

    #[test]
    fn ray_hits_equal_brute_force_on_random_rays() {
        let tris = random_tris(400);
        let bvh = build(&tris);
        let ordered: Vec<[V3; 3]> = bvh.order.iter().map(|&i| tris[i as usize]).collect();
        let mut hits = 0;
        for i in 0..2000 {
            let r = |d: u32| SampleRng::new(3, i, 0).get(d) * 2.0 - 1.0;
            let origin = v3(r(0), r(1), r(2)) * 8.0;
            let target = v3(r(3), r(4), r(5)) * 5.0;
            let ray = Ray::new(origin, (target - origin).normalize());
            let a = intersect_bvh(&bvh.nodes, &ordered, &ray, |_, _, _| true);
            let b = intersect_brute(&ordered, &ray);
            assert_eq!(a.map(|h| h.tri), b.map(|h| h.tri), "ray {i}");
            assert_eq!(a.map(|h| h.t), b.map(|h| h.t), "ray {i}");
            hits += usize::from(a.is_some());
            // The shadow-ray query agrees at a distance before, at, and
            // past the closest hit.
            for t_max in [2.0, 9.0, 30.0, f32::INFINITY] {
                let blocked = b.is_some_and(|h| h.t < t_max);
                assert_eq!(
                    occluded(&bvh.nodes, &ordered, &ray, t_max, |_, _, _| true),
                    blocked,
                    "ray {i} to {t_max}"
                );
            }
            if let Some(h) = b {
                assert!(
                    !occluded(&bvh.nodes, &ordered, &ray, h.t, |_, _, _| true),
                    "ray {i}: up to its hit"
                );
            }
        }
        assert!(hits > 500, "only {hits} hits: the test rays miss too often");
    }

    #[test]
    fn identical_triangles_still_build_a_bounded_tree() {
        let t = [v3(0.0, 0.0, 0.0), v3(1.0, 0.0, 0.0), v3(0.0, 1.0, 0.0)];
        let bvh = build(&vec![t; 1000]);
        assert_eq!(bvh.order.len(), 1000);
        assert!(bvh.nodes.len() < 1000);
        assert!(
            bvh.nodes
                .iter()
                .all(|n| n.leaf_count() as usize <= MAX_LEAF_COUNT)
        );
    }

    /// Depth of the deepest leaf, checking on the way that following the
    /// links with every box hit visits each node once, in order, and ends.
    fn walk(bvh: &Bvh) -> usize {
        let mut visited = vec![false; bvh.nodes.len()];
        let mut i = 0u32;
        while i != END {
            assert!(!visited[i as usize], "node {i} visited twice");
            visited[i as usize] = true;
            let n = bvh.nodes[i as usize];
            i = if n.leaf_count() == 0 { n.a } else { n.miss() };
        }
        assert!(visited.iter().all(|&v| v), "a node is never visited");
        let mut deepest = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((ni, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            let n = bvh.nodes[ni];
            if n.leaf_count() == 0 {
                stack.push((n.a as usize, depth + 1));
                stack.push((n.a as usize + 1, depth + 1));
            }
        }
        deepest
    }

    #[test]
    fn miss_links_walk_every_node_once() {
        // `walk` checks each node is visited once; a tree over 500 triangles
        // has depth.
        assert!(walk(&build(&random_tris(500))) > 0);
        assert_eq!(walk(&build(&random_tris(1))), 0);
    }

    #[test]
    fn a_scene_built_to_make_sah_chain_stays_shallow_with_small_leaves() {
        // Sizes growing geometrically along x: binned SAH peels the
        // biggest off again and again. Below MAX_DEPTH the build halves.
        let tris: Vec<[V3; 3]> = (0..20_000)
            .map(|i| {
                let x = 1.001f32.powi(i);
                let s = x * 1e-3;
                [v3(x, 0.0, 0.0), v3(x + s, s, 0.0), v3(x, s, s)]
            })
            .collect();
        let bvh = build(&tris);
        let depth = walk(&bvh);
        assert!(depth <= MAX_DEPTH + 16, "depth {depth}");
        assert!(
            bvh.nodes
                .iter()
                .all(|n| n.leaf_count() as usize <= MAX_LEAF_COUNT)
        );
        let ordered: Vec<[V3; 3]> = bvh.order.iter().map(|&i| tris[i as usize]).collect();
        for i in 0..200 {
            let x = 1.001f32.powi(i * 97) + 1e-4;
            let ray = Ray::new(v3(x, 1e-4, -5.0), v3(0.0, 0.0, 1.0));
            let a = intersect_bvh(&bvh.nodes, &ordered, &ray, |_, _, _| true);
            let b = intersect_brute(&ordered, &ray);
            assert_eq!(a.map(|h| h.t), b.map(|h| h.t), "ray {i}");
        }
    }
}
