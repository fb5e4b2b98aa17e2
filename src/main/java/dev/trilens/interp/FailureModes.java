package dev.trilens.interp;

import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import java.util.List;

/**
 * Where the trigram mechanism fails: the catalogue of the dataset's trigrams the model misses ({@link MissCatalogue})
 * and the families of generated inputs that try to break it ({@link AdversarialFamilies}), as analyze reports them.
 */
public final class FailureModes {
    private FailureModes() {
    }

    public record Report(MissCatalogue.Catalogue catalogue, List<AdversarialFamilies.Family> families,
                         int samplesPerFamily, long seed, double seconds) {
    }

    public static final int DEFAULT_SAMPLES = 200;

    /** The catalogue and every adversarial family, n samples each. */
    public static Report analyze(HookedTransformer model, TrigramDataset data, TrigramExtractor.Result extracted,
                                 int n, long seed) {
        long t0 = System.nanoTime();
        MissCatalogue.Catalogue cat = MissCatalogue.catalogue(model, data);
        List<AdversarialFamilies.Family> fams = AdversarialFamilies.adversarial(model, data, extracted, n,
                seed);
        return new Report(cat, fams, n, seed, (System.nanoTime() - t0) / 1e9);
    }
}
