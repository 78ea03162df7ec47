// C = A × B for n×n row-major f32 matrices, in 16×16 tiles kept in
// workgroup memory. `n` is a pipeline-overridable constant.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

override n: u32 = 64u;
const TILE: u32 = 16u;

var<workgroup> tile_a: array<f32, 256>;
var<workgroup> tile_b: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    var acc = 0.0;
    let tiles = (n + TILE - 1u) / TILE;
    for (var t = 0u; t < tiles; t++) {
        let a_col = t * TILE + lid.x;
        let b_row = t * TILE + lid.y;
        var va = 0.0;
        if (row < n && a_col < n) { va = a[row * n + a_col]; }
        var vb = 0.0;
        if (b_row < n && col < n) { vb = b[b_row * n + col]; }
        tile_a[lid.y * TILE + lid.x] = va;
        tile_b[lid.y * TILE + lid.x] = vb;
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            acc += tile_a[lid.y * TILE + k] * tile_b[k * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (row < n && col < n) {
        c[row * n + col] = acc;
    }
}
