package dev.trilens.data;

/**
 * MT19937 in the state PyTorch's CPU generator is in after {@code torch.manual_seed(seed)}, so datasets drawn here
 * match the ones the challenge model was trained on token for token.
 */
public final class TorchGenerator {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER_MASK = 0x80000000;
    private static final int LOWER_MASK = 0x7fffffff;

    private final int[] mt = new int[N];
    private int index;

    /** PyTorch seeds with init_genrand on the low 32 bits of the 64-bit seed. */
    public TorchGenerator(long seed) {
        mt[0] = (int) seed;
        for (int j = 1; j < N; j++) {
            mt[j] = 1812433253 * (mt[j - 1] ^ (mt[j - 1] >>> 30)) + j;
        }
        index = N;
    }

    /** The next tempered 32-bit output, as an unsigned value. */
    public long next32() {
        if (index >= N) {
            twist();
        }
        int y = mt[index++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y & 0xffffffffL;
    }

    /** A value in [0, n) exactly as {@code torch.randint(0, n, ...)} draws it on CPU: one 32-bit output mod n. */
    public int randint(int n) {
        if (n <= 0) {
            throw new IllegalArgumentException("randint bound must be positive, got " + n);
        }
        return (int) (next32() % n);
    }

    private void twist() {
        for (int k = 0; k < N; k++) {
            int y = (mt[k] & UPPER_MASK) | (mt[(k + 1) % N] & LOWER_MASK);
            mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? MATRIX_A : 0);
        }
        index = 0;
    }
}
