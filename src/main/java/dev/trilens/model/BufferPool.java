package dev.trilens.model;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * Float arrays handed back by closed activation caches, for the next forward pass to fill. A full cache of the
 * challenge's 2500 x 50 evaluation batch is ~280 MB; allocating it anew each pass costs more in zeroing and garbage
 * collection than the forward pass computes. Only arrays that no caller can still see come back here.
 */
final class BufferPool {
    /** At most this many floats are kept (1 GiB). */
    private static final long MAX_FLOATS = 1L << 28;
    private static final Map<Integer, ArrayDeque<float[]>> FREE = new HashMap<>();
    private static long pooled;

    private BufferPool() {
    }

    /** An array of exactly n floats with arbitrary contents: the caller overwrites every element. */
    static synchronized float[] take(int n) {
        ArrayDeque<float[]> q = FREE.get(n);
        if (q != null && !q.isEmpty()) {
            pooled -= n;
            return q.pop();
        }
        return new float[n];
    }

    static synchronized void give(float[] a) {
        if (pooled + a.length > MAX_FLOATS) {
            return;
        }
        FREE.computeIfAbsent(a.length, k -> new ArrayDeque<>()).push(a);
        pooled += a.length;
    }
}
