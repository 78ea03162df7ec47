// found[0]: how many hashes met the target; found[1..]: their nonces
// (as many as fit; the count goes on).
@group(0) @binding(1) var<storage, read_write> found: array<atomic<u32>>;

// Whether the digest, read as a little-endian 256-bit number, is ≤ target.
fn meets(digest: array<u32, 8>) -> bool {
    for (var i = 0u; i < 8u; i++) {
        let word = swap(digest[7u - i]);
        if (word != work.goal[i]) {
            return word < work.goal[i];
        }
    }
    return true;
}

@compute @workgroup_size(64)
fn search(@builtin(global_invocation_id) id: vec3<u32>) {
    for (var k = 0u; k < work.per_thread; k++) {
        let offset = nonce_offset(id, k);
        if (offset >= work.count) {
            return;
        }
        let nonce = work.first_nonce + offset;
        if (meets(sha256d(nonce))) {
            let slot = atomicAdd(&found[0], 1u) + 1u;
            if (slot < arrayLength(&found)) {
                atomicStore(&found[slot], nonce);
            }
        }
    }
}
