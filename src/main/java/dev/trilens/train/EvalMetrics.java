package dev.trilens.train;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;

/**
 * What `evaluate` reports: the challenge's metrics on a dataset, plus the spread of the correct-token probability.
 *
 * @param loss mean cross-entropy of positions 0..T-2 predicting tokens 1..T-1
 * @param lossAsFrac (loss - min) / (unif - min), unif = ln(d_vocab), min = unif * (1 - trigram_prob): 0 is the best
 *                   a model can do on this data, 1 is uniform guessing
 */
// the keys of `evaluate --json`, in this order, wherever Jackson writes this record
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record EvalMetrics(double loss, double lossAsFrac, double meanCorrectProb, double medianCorrectProb,
                          double minCorrectProb, int trigramNCorrect, double trigramFracCorrect,
                          double trigramAvgCorrectProb, int nTrigrams) {
}
