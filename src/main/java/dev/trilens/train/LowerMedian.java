package dev.trilens.train;

/**
 * The lower median (torch.median's: of an even count, the lower middle value) of more non-negative floats than fit in
 * memory, exactly, in two passes over them and two histograms of fixed size. Non-negative floats sort as their bit
 * patterns do, so pass one counts values by their top 20 bits, which locates the bucket holding the median's rank;
 * pass two counts that bucket's values by their low 12 bits, which locates the value itself. NaN sorts last, as
 * {@link java.util.Arrays#sort(float[])} puts it.
 */
final class LowerMedian {
    private static final int LOW_BITS = 12;
    private final long[] high = new long[1 << (32 - LOW_BITS - 1)];
    private final long[] low = new long[1 << LOW_BITS];
    private long n;
    private int bucket = -1;
    private long rankInBucket;

    /** Pass one: every value once. */
    void count(float v) {
        high[bits(v) >>> LOW_BITS]++;
        n++;
    }

    /** Between the passes: where the median's rank falls. */
    void locate() {
        if (n == 0) {
            throw new IllegalStateException("no values");
        }
        long rank = (n - 1) / 2, seen = 0;
        for (int b = 0; b < high.length; b++) {
            if (seen + high[b] > rank) {
                bucket = b;
                rankInBucket = rank - seen;
                return;
            }
            seen += high[b];
        }
        throw new IllegalStateException("rank " + rank + " past " + seen + " values");
    }

    /** Pass two: every value again, in any order. */
    void refine(float v) {
        int b = bits(v);
        if (b >>> LOW_BITS == bucket) {
            low[b & ((1 << LOW_BITS) - 1)]++;
        }
    }

    float median() {
        long seen = 0;
        for (int j = 0; j < low.length; j++) {
            seen += low[j];
            if (seen > rankInBucket) {
                return Float.intBitsToFloat(bucket << LOW_BITS | j);
            }
        }
        throw new IllegalStateException("pass two saw fewer values than pass one");
    }

    /** Non-negative floats only (probabilities); every NaN counts as the canonical one, above +infinity. */
    private static int bits(float v) {
        if (v < 0) {
            throw new IllegalArgumentException("negative value " + v);
        }
        return Float.floatToIntBits(v) & 0x7fffffff;
    }
}
