package dev.trilens.interp;

import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;

/**
 * What every analysis works from: the model, and the dataset it is evaluated on (null when unknown, e.g. for a
 * checkpoint of unknown provenance; analyses that need the data then say so rather than guess).
 *
 * @param threshold the worklog's attention/probability threshold (0.2 by default)
 */
public record AnalysisContext(HookedTransformer model, TrigramDataset data, double threshold) {
    public static final double DEFAULT_THRESHOLD = 0.2;

    public AnalysisContext(HookedTransformer model, TrigramDataset data) {
        this(model, data, DEFAULT_THRESHOLD);
    }
}
