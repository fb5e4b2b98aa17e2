package dev.trilens.train;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;

/**
 * What `evaluate` reports: the challenge's metrics on a dataset, plus the spread of the correct-token probability.
 *
 * @param loss mean cross-entropy of positions 0..T-2 predicting tokens 1..T-1
 * @param lossAsFrac (loss - min) / (unif - min), unif = ln(d_vocab), min = unif * (1 - trigram_prob): 0 is the best
 *                   a model can do on this data, 1 is uniform guessing
 */
// the keys of `evaluate --json`, in this order, wherever Jackson writes this record (the snake_case strategy makes
// one word of the capitals in trigramNCorrect, hence its explicit name, which Jackson would otherwise put last)
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
@JsonPropertyOrder({"loss", "loss_as_frac", "mean_correct_prob", "median_correct_prob", "min_correct_prob",
        "trigram_n_correct", "trigram_frac_correct", "trigram_avg_correct_prob", "n_trigrams"})
public record EvalMetrics(double loss, double lossAsFrac, double meanCorrectProb, double medianCorrectProb,
                          double minCorrectProb, @JsonProperty("trigram_n_correct") int trigramNCorrect, double trigramFracCorrect,
                          double trigramAvgCorrectProb, int nTrigrams) {
}
