package dev.trilens.model;

import java.lang.ref.ReferenceQueue;
import java.lang.ref.SoftReference;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * Float arrays handed back by closed activation caches, for the next forward pass to fill. A full cache of the
 * challenge's 2500 x 50 evaluation batch is ~280 MB; allocating it anew each pass costs more in zeroing and garbage
 * collection than the forward pass computes. Only arrays that no caller can still see come back here.
 *
 * <p>The pool holds up to half of the heap's maximum (at least 1 GiB), so a whole cache of a larger model comes back
 * too (bench eval at V1000 T100 D128 L2 H4 M512 keeps ~6 GB of activations a pass; with a 1 GiB pool every pass
 * allocated, zeroed and collected most of them again). It holds them softly: the collector clears them before it
 * would run out of memory, so what the pool keeps never stops a command that needs the memory for something else.
 */
final class BufferPool {
    /** At most this many floats are kept: half the heap's maximum, at least 1 GiB. */
    static final long MAX_FLOATS = Math.max(1L << 28, Runtime.getRuntime().maxMemory() / Float.BYTES / 2);
    private static final Map<Integer, ArrayDeque<Pooled>> FREE = new HashMap<>();
    private static final ReferenceQueue<float[]> CLEARED = new ReferenceQueue<>();
    /** Floats in the pool's arrays that the collector has not cleared (as far as CLEARED has told). */
    private static long pooled;

    /** A pooled array, remembering its length for the count once the collector has cleared it. */
    private static final class Pooled extends SoftReference<float[]> {
        final int length;
        /** Taken out of FREE (handed out, or found cleared there): no longer counted in pooled. */
        boolean uncounted;

        Pooled(float[] a) {
            super(a, CLEARED);
            length = a.length;
        }
    }

    private BufferPool() {
    }

    /** An array of exactly n floats with arbitrary contents: the caller overwrites every element. */
    static synchronized float[] take(int n) {
        forgetCleared();
        ArrayDeque<Pooled> q = FREE.get(n);
        while (q != null && !q.isEmpty()) {
            Pooled p = q.pop();
            uncount(p);
            float[] a = p.get();
            if (a != null) {
                return a;
            }
        }
        return new float[n];
    }

    static synchronized void give(float[] a) {
        forgetCleared();
        if (pooled + a.length > MAX_FLOATS) {
            return;
        }
        FREE.computeIfAbsent(a.length, k -> new ArrayDeque<>()).push(new Pooled(a));
        pooled += a.length;
    }

    /** Floats the pool holds now, for the tests. */
    static synchronized long pooledFloats() {
        forgetCleared();
        return pooled;
    }

    /** Stops counting the arrays the collector has cleared (their entries in FREE are dropped when reached). */
    private static void forgetCleared() {
        for (java.lang.ref.Reference<? extends float[]> r = CLEARED.poll(); r != null; r = CLEARED.poll()) {
            uncount((Pooled) r);
        }
    }

    private static void uncount(Pooled p) {
        if (!p.uncounted) {
            p.uncounted = true;
            pooled -= p.length;
        }
    }
}
