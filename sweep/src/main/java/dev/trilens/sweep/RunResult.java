package dev.trilens.sweep;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import java.util.Map;

/**
 * A finished run, as runs/ID/result.json holds it and as a row of the results table: the final model evaluated on the
 * 2500-sequence dataset of its seed and trigram_prob (the numbers `trilens evaluate` gives), the trigrams `extract`
 * reads from its weights, and how the run went.
 *
 * @param config the run's whole config (TrainConfig.toJson), to tell a finished run from one the grid no longer asks
 * @param trigramNCorrect (trigram_n_correct: the snake-case rule would run N and C together) dataset trigrams whose c is the model's argmax after (a, b): "trigrams learned"
 * @param nExtracted trigrams `extract` reads from the weights alone (label-free cut)
 * @param extractedPrecision of the extracted trigrams against the dataset's
 * @param extractedRecall of the dataset's trigrams among the extracted ones
 * @param seconds training time: the sum of the epochs' seconds in metrics.jsonl (epochs lost to a failure excluded)
 * @param runSeconds wall time of the attempt that finished the run: data, training, evaluation and extraction
 * @param attempt Spark's attempt number of the task that finished it (0: the first)
 * @param resumedAfterEpoch the epochs its checkpoint held when that attempt started (0: trained from scratch)
 * @param kernels "vector" (Vector API) or "scalar": whether the executor had jdk.incubator.vector
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record RunResult(String runId, Map<String, String> axes, Map<String, Object> config, int epochs,
                        double loss, double lossAsFrac, double meanCorrectProb, double medianCorrectProb,
                        double minCorrectProb, @JsonProperty("trigram_n_correct") int trigramNCorrect,
                        double trigramFracCorrect,
                        double trigramAvgCorrectProb, int nTrigrams, int nExtracted, double extractedPrecision,
                        double extractedRecall, double trainLoss, double valLoss, double seconds, double runSeconds,
                        int attempt, int resumedAfterEpoch, int threads, String kernels, String host) {

    /** The value of a results-table column that is not an axis, by its snake_case name. */
    public Object metric(String column) {
        return switch (column) {
            case "loss" -> loss;
            case "loss_as_frac" -> lossAsFrac;
            case "mean_correct_prob" -> meanCorrectProb;
            case "median_correct_prob" -> medianCorrectProb;
            case "min_correct_prob" -> minCorrectProb;
            case "trigram_n_correct" -> trigramNCorrect;
            case "trigram_frac_correct" -> trigramFracCorrect;
            case "trigram_avg_correct_prob" -> trigramAvgCorrectProb;
            case "n_trigrams" -> nTrigrams;
            case "n_extracted" -> nExtracted;
            case "extracted_precision" -> extractedPrecision;
            case "extracted_recall" -> extractedRecall;
            case "train_loss" -> trainLoss;
            case "val_loss" -> valLoss;
            case "epochs" -> epochs;
            case "seconds" -> seconds;
            case "run_seconds" -> runSeconds;
            case "attempt" -> attempt;
            case "resumed_after_epoch" -> resumedAfterEpoch;
            default -> throw new IllegalArgumentException("unknown column " + column);
        };
    }
}
