package dev.trilens.io;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.ModelConfig;
import java.util.Map;

/**
 * Which dataset a checkpoint is measured on. A trilens checkpoint records the seed and trigram_prob it was trained on
 * in its metadata; what the user passes wins over that, and the challenge's data (seed 40, trigram_prob 0.05) is the
 * default for a checkpoint that says nothing. d_vocab and the sequence length are always the model's.
 */
public final class DatasetSource {
    /** Metadata keys under which a trilens checkpoint records the data it was trained on. */
    public static final String META_SEED = "data.seed", META_TRIGRAM_PROB = "data.trigram_prob";
    /** The challenge's dataset. */
    public static final long CHALLENGE_SEED = 40;
    public static final double CHALLENGE_TRIGRAM_PROB = 0.05;

    private DatasetSource() {
    }

    /** A dataset's seed and trigram_prob. */
    public record Spec(long seed, double trigramProb) {
        /** The dataset of this spec for the model: its d_vocab, its n_ctx as the sequence length, size sequences. */
        public TrigramDataset generate(ModelConfig cfg, int size) {
            return TrigramDataset.generate(cfg.dVocab(), cfg.nCtx(), trigramProb, seed, size);
        }
    }

    /**
     * seed and trigramProb as given (null: not given), else from the checkpoint's metadata, else the challenge's.
     * Refuses a model whose context cannot hold a trigram.
     */
    public static Spec resolve(Checkpoint ckpt, Long seed, Double trigramProb) {
        Map<String, String> meta = ckpt.metadata();
        try {
            if (seed == null) {
                seed = meta.containsKey(META_SEED) ? Long.parseLong(meta.get(META_SEED)) : CHALLENGE_SEED;
            }
            if (trigramProb == null) {
                trigramProb = meta.containsKey(META_TRIGRAM_PROB) ? Double.parseDouble(meta.get(META_TRIGRAM_PROB))
                        : CHALLENGE_TRIGRAM_PROB;
            }
        } catch (NumberFormatException e) {
            throw new TrilensException("checkpoint metadata has a malformed dataset parameter (" + e.getMessage()
                    + "); pass --seed and --trigram-prob explicitly");
        }
        int nCtx = ckpt.weights().cfg.nCtx();
        if (nCtx < 3) {
            throw new TrilensException("the model's n_ctx is " + nCtx + ", but trigram sequences need at least 3");
        }
        return new Spec(seed, trigramProb);
    }
}
