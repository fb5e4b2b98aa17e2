package dev.trilens.interp;

import dev.trilens.Fixtures;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.util.Random;

/** Models for the circuit tests: random weights with every bias and LayerNorm parameter non-trivial. */
final class CircuitsTestModels {
    /** LayerNorm, 2 layers, 2 heads, MLP. */
    static final ModelConfig LN_2L2H = new ModelConfig(11, 8, 12, 2, 2, 4, 10, true);
    /** The challenge's shape (no LayerNorm, 1 layer, 1 head, ReLU MLP). */
    static final ModelConfig ARENA = ModelConfig.arena();
    /** Attention-only, with LayerNorm, 2 heads. */
    static final ModelConfig ATTN_ONLY = new ModelConfig(9, 7, 10, 1, 2, 3, 0, true);
    /** Attention-only without LayerNorm. */
    static final ModelConfig ATTN_ONLY_NO_LN = new ModelConfig(9, 7, 10, 1, 2, 3, 0, false);

    private static Weights challenge;
    private static TrigramDataset challengeData;

    private CircuitsTestModels() {
    }

    /** TransformerLens init, then biases N(0, 0.1^2) and LayerNorm w = 1 + N(0, 0.2^2), b = N(0, 0.1^2). */
    static Weights random(ModelConfig cfg, long seed) {
        Weights w = Weights.init(cfg, seed);
        Random rng = new Random(seed + 1);
        for (ParamLayout.Param p : w.layout.params()) {
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            for (int i = 0; i < p.size(); i++) {
                if (leaf.equals("w")) {
                    w.data[p.offset() + i] = (float) (1 + 0.2 * rng.nextGaussian());
                } else if (leaf.startsWith("b")) {
                    w.data[p.offset() + i] = (float) (0.1 * rng.nextGaussian());
                }
            }
        }
        return w;
    }

    static HookedTransformer model(ModelConfig cfg, long seed) {
        return new HookedTransformer(random(cfg, seed));
    }

    static int[] tokens(ModelConfig cfg, int B, int T, long seed) {
        Random rng = new Random(seed);
        int[] t = new int[B * T];
        for (int i = 0; i < t.length; i++) {
            t[i] = rng.nextInt(cfg.dVocab());
        }
        return t;
    }

    /** The challenge model (skips the test when the fixture is absent), loaded once. */
    static synchronized HookedTransformer challenge() {
        java.nio.file.Path path = Fixtures.challengeModel();
        if (challenge == null) {
            challenge = Checkpoints.load(path).weights();
        }
        return new HookedTransformer(challenge);
    }

    /** The challenge's dataset (seed 40, trigram_prob 0.05), 64 sequences. */
    static synchronized TrigramDataset challengeData() {
        if (challengeData == null) {
            challengeData = TrigramDataset.generate(75, 50, 0.05, 40, 64);
        }
        return challengeData;
    }
}
