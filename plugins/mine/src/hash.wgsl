// digests[8 * i ..]: the SHA-256d digest (8 big-endian words) of the
// header with nonce `first_nonce + i` (the self-test's known-answer mode).
@group(0) @binding(1) var<storage, read_write> digests: array<u32>;

@compute @workgroup_size(64)
fn hash(@builtin(global_invocation_id) id: vec3<u32>) {
    for (var k = 0u; k < work.per_thread; k++) {
        let offset = nonce_offset(id, k);
        if (offset >= work.count) {
            return;
        }
        let digest = sha256d(work.first_nonce + offset);
        for (var j = 0u; j < 8u; j++) {
            digests[8u * offset + j] = digest[j];
        }
    }
}
