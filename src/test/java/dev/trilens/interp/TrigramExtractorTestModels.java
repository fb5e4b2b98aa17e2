package dev.trilens.interp;

import dev.trilens.Fixtures;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Models shared by the extraction, causal-validation, failure-mode and extract-command tests, each built once per
 * test JVM: the challenge model (skips when absent) and a tiny model trained in a few seconds. Only what no interp
 * code computes is kept (see {@link #challengeExtraction}).
 */
public final class TrigramExtractorTestModels {

    /** 16 tokens, 24 trigrams, 15 epochs (TrainerTest.learnsItsTrigrams): every trigram right, in ~3 s. */
    public static final TrainConfig TINY = new TrainConfig(16, 12, 0.1, 40, 2000, 200, 15, 64, 1e-2, 1e-3, 1e-3,
            32, 1, 16, 20, 1, false, 40);

    private static Weights challenge;
    private static Path tinyDir;
    private static Trainer tiny;

    private TrigramExtractorTestModels() {
    }

    public static synchronized Weights challenge() {
        Path p = Fixtures.challengeModel();
        if (challenge == null) {
            challenge = Checkpoints.load(p).weights();
        }
        return challenge;
    }

    /** The challenge's dataset (seed 40, trigram_prob 0.05) with size sequences. */
    public static TrigramDataset challengeData(int size) {
        return TrigramDataset.generate(75, 50, 0.05, 40, size);
    }

    /**
     * The default extraction of the challenge model, computed on every call: kept across tests, a result computed
     * while mutation testing had one mutant in place would be what the tests of every later mutant see.
     */
    public static TrigramExtractor.Result challengeExtraction() {
        return TrigramExtractor.extract(challenge());
    }

    /** The tiny model, trained on first use; its folder holds model.safetensors with the data's metadata. */
    public static synchronized Trainer tiny() {
        if (tiny == null) {
            try {
                tinyDir = Files.createTempDirectory("trilens-extract-tiny");
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            tinyDir.toFile().deleteOnExit();
            tiny = Trainer.start(TINY, tinyDir);
            tiny.run(new Trainer.Listener() {
            });
            for (String f : new String[] {Trainer.MODEL, Trainer.BEST, Trainer.METRICS, Trainer.STATE}) {
                tinyDir.resolve(f).toFile().deleteOnExit();
            }
        }
        return tiny;
    }

    public static HookedTransformer tinyModel() {
        return new HookedTransformer(tiny().weights());
    }

    public static Path tinyCheckpoint() {
        return tiny().dir().resolve(Trainer.MODEL);
    }
}
