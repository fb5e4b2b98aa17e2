package dev.trilens.train;

import com.fasterxml.jackson.annotation.JsonValue;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What `evaluate` reports: the challenge's metrics on a dataset, plus the spread of the correct-token probability.
 *
 * @param loss mean cross-entropy of positions 0..T-2 predicting tokens 1..T-1
 * @param lossAsFrac (loss - min) / (unif - min), unif = ln(d_vocab), min = unif * (1 - trigram_prob): 0 is the best
 *                   a model can do on this data, 1 is uniform guessing
 */
public record EvalMetrics(double loss, double lossAsFrac, double meanCorrectProb, double medianCorrectProb,
                          double minCorrectProb, int trigramNCorrect, double trigramFracCorrect,
                          double trigramAvgCorrectProb, int nTrigrams) {

    /** The snake_case keys of `evaluate --json`, in a stable order; also how Jackson writes this record anywhere. */
    @JsonValue
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("loss", loss);
        m.put("loss_as_frac", lossAsFrac);
        m.put("mean_correct_prob", meanCorrectProb);
        m.put("median_correct_prob", medianCorrectProb);
        m.put("min_correct_prob", minCorrectProb);
        m.put("trigram_n_correct", trigramNCorrect);
        m.put("trigram_frac_correct", trigramFracCorrect);
        m.put("trigram_avg_correct_prob", trigramAvgCorrectProb);
        m.put("n_trigrams", nTrigrams);
        return m;
    }
}
