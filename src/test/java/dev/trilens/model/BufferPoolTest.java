package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class BufferPoolTest {

    @Test
    void anArrayGivenBackIsHandedOutAgainAtItsSizeOnly() {
        // sizes no other test's activations have, so the shared pool's other arrays do not interfere
        float[] a = new float[12_347];
        long before = BufferPool.pooledFloats();
        BufferPool.give(a);
        assertThat(BufferPool.pooledFloats()).isEqualTo(before + a.length);
        assertThat(BufferPool.take(12_349)).isNotSameAs(a).hasSize(12_349);
        assertThat(BufferPool.take(12_347)).isSameAs(a);
        assertThat(BufferPool.pooledFloats()).isEqualTo(before);
        assertThat(BufferPool.take(12_347)).isNotSameAs(a).hasSize(12_347);
    }

    @Test
    void thePoolHoldsHalfTheHeapsMaximumAndAtLeastOneGib() {
        long halfHeap = Runtime.getRuntime().maxMemory() / Float.BYTES / 2;
        assertThat(BufferPool.MAX_FLOATS).isEqualTo(Math.max(1L << 28, halfHeap));
    }
}
