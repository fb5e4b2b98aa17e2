package dev.trilens.data;

import dev.trilens.TrilensException;
import java.util.Arrays;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The ARENA November 2024 trigram challenge's {@code BigramDataset}: uniformly random token sequences in which
 * a fixed set of trigrams (a, b, c) is forced, i.e. wherever (a, b) appears the next token is c. Reproduces the
 * PyTorch original bit for bit for the same parameters (see ../shared/fixtures/arena-nov24/README.md).
 */
public final class TrigramDataset {
    private final int dVocab;
    private final int seqLen;
    private final int size;
    private final double trigramProb;
    private final long seed;
    /** How many 32-bit outputs of the seeded generator the dataset consumed (see {@link #generatorAfter()}). */
    private final long draws;
    private final int[][] trigrams;
    /** completion[a * dVocab + b] = c, or -1: makes prefix lookups O(1) in the hot loops. */
    private final int[] completion;
    private final int[] tokens;

    private TrigramDataset(int dVocab, int seqLen, int size, double trigramProb, long seed, long draws,
                           int[][] trigrams, int[] completion, int[] tokens) {
        this.dVocab = dVocab;
        this.seqLen = seqLen;
        this.size = size;
        this.trigramProb = trigramProb;
        this.seed = seed;
        this.draws = draws;
        this.trigrams = trigrams;
        this.completion = completion;
        this.tokens = tokens;
    }

    /**
     * The challenge's dataset: n_trigrams = int(trigramProb * dVocab * (dVocab - 1)), evaluated left to right in
     * double precision and truncated as Python's int() does (0.05 * 75 * 74 = 277.5 -> 277).
     */
    public static TrigramDataset generate(int dVocab, int seqLen, double trigramProb, long seed, int size) {
        if (!(trigramProb >= 0 && trigramProb <= 1)) {
            throw new TrilensException("trigram_prob must be in [0, 1], got " + trigramProb);
        }
        checkShape(dVocab, seqLen, size);
        int n = (int) (trigramProb * dVocab * (dVocab - 1));
        return build(dVocab, seqLen, n, trigramProb, seed, size);
    }

    /** Same algorithm with the number of trigrams given directly; {@link #trigramProb()} is then NaN. */
    public static TrigramDataset withTrigramCount(int dVocab, int seqLen, int nTrigrams, long seed, int size) {
        checkShape(dVocab, seqLen, size);
        if (nTrigrams < 0) {
            throw new TrilensException("n_trigrams must be >= 0, got " + nTrigrams);
        }
        return build(dVocab, seqLen, nTrigrams, Double.NaN, seed, size);
    }

    private static void checkShape(int dVocab, int seqLen, int size) {
        if (dVocab < 3) {
            throw new TrilensException("d_vocab must be >= 3, got " + dVocab);
        }
        if (seqLen < 3) {
            throw new TrilensException("seq_len must be >= 3 (a trigram needs three positions), got " + seqLen);
        }
        if (size < 1) {
            throw new TrilensException("dataset size must be >= 1 sequence, got " + size);
        }
        if ((long) size * seqLen > Integer.MAX_VALUE - 8) {
            throw new TrilensException("dataset too large: " + size + " sequences x seq_len " + seqLen
                    + " exceeds " + (Integer.MAX_VALUE - 8) + " tokens; use fewer sequences");
        }
    }

    private static TrigramDataset build(int d, int seqLen, int n, double prob, long seed, int size) {
        TorchGenerator gen = new TorchGenerator(seed);
        Drawn t = drawTrigrams(gen, d, n);
        int[] tokens = drawRows(gen, t.completion(), d, seqLen, size);
        long draws = t.draws() + (long) tokens.length;
        return new TrigramDataset(d, seqLen, size, prob, seed, draws, t.trigrams(), t.completion(), tokens);
    }

    /**
     * The challenge's dataset of any number of sequences, handed over in order in chunks of at most chunkRows, each
     * drawn from the generator exactly as {@link #generate} draws the same rows: the concatenated chunks are
     * generate()'s tokens, but only one chunk is ever held. For evaluations too large for one array or one batch.
     */
    public static void forEachChunk(int dVocab, int seqLen, double trigramProb, long seed, long size, int chunkRows,
                                    Consumer<TrigramDataset> body) {
        if (!(trigramProb >= 0 && trigramProb <= 1)) {
            throw new TrilensException("trigram_prob must be in [0, 1], got " + trigramProb);
        }
        if (size < 1) {
            throw new TrilensException("dataset size must be >= 1 sequence, got " + size);
        }
        if (chunkRows < 1) {
            throw new IllegalArgumentException("chunkRows must be >= 1, got " + chunkRows);
        }
        checkShape(dVocab, seqLen, (int) Math.min(size, chunkRows));
        TorchGenerator gen = new TorchGenerator(seed);
        Drawn t = drawTrigrams(gen, dVocab, (int) (trigramProb * dVocab * (dVocab - 1)));
        long draws = t.draws();
        for (long done = 0; done < size; ) {
            int rows = (int) Math.min(chunkRows, size - done);
            int[] tokens = drawRows(gen, t.completion(), dVocab, seqLen, rows);
            draws += tokens.length;
            body.accept(new TrigramDataset(dVocab, seqLen, rows, trigramProb, seed, draws, t.trigrams(),
                    t.completion(), tokens));
            done += rows;
        }
    }

    /** The kept trigrams, the prefix table and how many draws choosing them took. */
    private record Drawn(int[][] trigrams, int[] completion, long draws) {
    }

    private static Drawn drawTrigrams(TorchGenerator gen, int d, int n) {
        // Each (a, b) can start at most one trigram, so more than d*d can never be drawn.
        if ((long) n > (long) d * d) {
            throw impossible(n, d);
        }
        int[] completion = new int[d * d];
        Arrays.fill(completion, -1);
        boolean[] isSuffix = new boolean[d * d]; // (b, c) pairs of kept trigrams
        int[][] trigrams = new int[n][];
        int kept = 0;
        // Greedy drawing can get stuck (or crawl) when n is near what the no-chain rule allows; give up well
        // before that turns into a hang. Feasible configs use a small multiple of n draws.
        long maxAttempts = 200L * n + 100_000L;
        long attempts = 0;
        for (; kept < n; attempts++) {
            if (attempts >= maxAttempts) {
                throw impossible(n, d);
            }
            int a = gen.randint(d);
            int b = gen.randint(d);
            int c = gen.randint(d);
            int ab = a * d + b;
            int bc = b * d + c;
            // Skips duplicates and contradictions (same prefix), and chains either way round with a kept trigram.
            // Checked before this one is kept, as the fixture README states, so a self-loop (a, a, a) is allowed.
            if (completion[ab] >= 0 || completion[bc] >= 0 || isSuffix[ab]) {
                continue;
            }
            completion[ab] = c;
            isSuffix[bc] = true;
            trigrams[kept++] = new int[] {a, b, c};
        }
        return new Drawn(trigrams, completion, 3 * attempts);
    }

    /** The next rows of tokens from the generator, with the trigrams forced. */
    private static int[] drawRows(TorchGenerator gen, int[] completion, int d, int seqLen, int size) {
        int[] tokens = new int[size * seqLen];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = gen.randint(d);
        }
        // The original loops position-outer over all rows; rows are independent so row-outer gives the same
        // result. What matters is going left to right in place: a forced c can start the next forced pair (golden
        // sequences 2 and 3 differ if all prefixes are read from the raw draws instead).
        for (int r = 0; r < size; r++) {
            int base = r * seqLen;
            for (int i = 0; i + 2 < seqLen; i++) {
                int c = completion[tokens[base + i] * d + tokens[base + i + 1]];
                if (c >= 0) {
                    tokens[base + i + 2] = c;
                }
            }
        }
        return tokens;
    }

    private static TrilensException impossible(int n, int d) {
        return new TrilensException("cannot draw n_trigrams=" + n + " distinct trigrams with d_vocab=" + d
                + " (no two may share (a, b) and none may chain into another); use a lower trigram_prob");
    }

    public int dVocab() {
        return dVocab;
    }

    public int seqLen() {
        return seqLen;
    }

    /** Number of sequences. */
    public int size() {
        return size;
    }

    /** The trigram_prob the dataset was generated with; NaN when built from a trigram count. */
    public double trigramProb() {
        return trigramProb;
    }

    public long seed() {
        return seed;
    }

    /**
     * PyTorch's generator as the original leaves it: seeded with {@link #seed()}, then advanced past every draw
     * the dataset made (the trigrams, then the tokens). The challenge's training script goes on drawing from it
     * (its train/validation split and its DataLoader's shuffles), so this is where those streams start. A fresh
     * generator each call. A {@link #slice} reports its parent's.
     */
    public TorchGenerator generatorAfter() {
        TorchGenerator g = new TorchGenerator(seed);
        g.skip(draws);
        return g;
    }

    public int nTrigrams() {
        return trigrams.length;
    }

    /** The trigrams as [n][3] {a, b, c}, in the order the generator kept them (a fresh copy). */
    public int[][] trigrams() {
        int[][] out = new int[trigrams.length][];
        for (int i = 0; i < out.length; i++) {
            out[i] = trigrams[i].clone();
        }
        return out;
    }

    /**
     * All tokens, row-major [size * seqLen]. This is the backing array, not a copy (datasets run to millions of
     * tokens): do not modify it.
     */
    public int[] tokens() {
        return tokens;
    }

    public int token(int seq, int pos) {
        Objects.checkIndex(seq, size);
        Objects.checkIndex(pos, seqLen);
        return tokens[seq * seqLen + pos];
    }

    /** The c of the trigram starting (a, b), or -1 when (a, b) starts none. */
    public int completionOf(int a, int b) {
        checkToken(a);
        checkToken(b);
        return completion[a * dVocab + b];
    }

    /** Whether the token at (seq, pos) was forced, i.e. the two tokens before it are a trigram's (a, b). */
    public boolean completesTrigram(int seq, int pos) {
        Objects.checkIndex(seq, size);
        Objects.checkIndex(pos, seqLen);
        if (pos < 2) {
            return false;
        }
        int i = seq * seqLen + pos;
        return completion[tokens[i - 2] * dVocab + tokens[i - 1]] >= 0;
    }

    /** Every trigram as a 3-token sequence, flat [n * 3] in generation order: the challenge's trigram metric batch. */
    public int[] trigramBatch() {
        int[] out = new int[trigrams.length * 3];
        for (int i = 0; i < trigrams.length; i++) {
            System.arraycopy(trigrams[i], 0, out, i * 3, 3);
        }
        return out;
    }

    /**
     * Where trigram i's prediction of c sits in the logits of {@link #trigramBatch} ([n, 3, d_vocab]): the row of
     * position 1, which has seen a and b. The challenge's trigram metrics are read there.
     */
    public static int predictionRow(int i, int dVocab) {
        return (i * 3 + 1) * dVocab;
    }

    /** A copy of the tokens of sequences [fromSeq, toSeq), row-major. */
    public int[] tokensOf(int fromSeq, int toSeq) {
        Objects.checkFromToIndex(fromSeq, toSeq, size);
        return Arrays.copyOfRange(tokens, fromSeq * seqLen, toSeq * seqLen);
    }

    /**
     * Sequences [from, to) as a dataset with the same trigrams (e.g. a train/validation split); it reports the
     * parent's seed and trigram_prob, since those describe how its tokens came to be.
     */
    public TrigramDataset slice(int from, int to) {
        Objects.checkFromToIndex(from, to, size);
        if (from == to) {
            throw new TrilensException("empty slice [" + from + ", " + to + ") of a " + size
                    + "-sequence dataset; expected at least one sequence");
        }
        return new TrigramDataset(dVocab, seqLen, to - from, trigramProb, seed, draws, trigrams, completion,
                tokensOf(from, to));
    }

    private void checkToken(int t) {
        if (t < 0 || t >= dVocab) {
            throw new TrilensException("token " + t + " out of range; expected 0 <= token < d_vocab=" + dVocab);
        }
    }
}
