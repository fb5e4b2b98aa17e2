package dev.trilens.interp;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How a {@link TrigramExtractor} table scores when the dataset is known: against the dataset's trigrams, and against
 * what the model does with each of them (its argmax and P(c) at position 1 of [a, b, c], the challenge's trigram
 * metric). The extraction itself never runs the model; this is where the model is ground truth.
 */
public final class ExtractionScore {
    private ExtractionScore() {
    }

    /**
     * Extracted vs reference trigrams: an extracted entry is correct when (a, b, c) is in the reference; prefixes
     * count (a, b) matches whatever c.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Agreement(int nExtracted, int nReference, int nCorrect, double precision, double recall,
                             int nPrefixCorrect, double prefixPrecision, double prefixRecall) {
    }

    /**
     * A trigram's prediction depends on a when the model's P(c | a, b) is more than this many times the median over
     * every other a' of P(c | a', b).
     */
    public static final double A_DEPENDENCE_RATIO = 2;

    /**
     * One dataset trigram as the real model treats it: its forward on the 3-token sequence [a, b, c] (the challenge
     * metric's batch), read at position 1.
     *
     * @param argmaxCorrect the model's argmax there is c (what the challenge's trigram metric counts)
     * @param probC the model's P(c | a, b) there
     * @param medianOtherA the median over every a' != a of the model's P(c | a', b), the same forward with a' in place
     *                     of a
     * @param aDependent probC > {@link #A_DEPENDENCE_RATIO} * medianOtherA: the prediction depends on a
     * @param extracted (a, b, c) is in the extracted table
     * @param bigramDefault (b, c) is a bigram default (*, b, c) of the extraction
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record DatasetTrigram(int a, int b, int c, boolean argmaxCorrect, double probC, double medianOtherA,
                                 boolean aDependent, boolean extracted, boolean bigramDefault) {
    }

    /** Listed (b, c) pairs against the distinct (b, c) pairs of the dataset's trigrams. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record PairAgreement(int nListed, int nReference, int nCorrect, double precision, double recall) {
    }

    /**
     * The extraction against the dataset and against what the model does with it. The only place extraction runs the
     * model is here, as ground truth.
     *
     * @param vsDataset against the dataset's trigrams
     * @param vsModel against the argmax-correct trigrams: the dataset trigrams whose argmax at position 1 of
     *                [a, b, c] is c, as the challenge's trigram metric counts them ({@link #recallVsArgmaxCorrect})
     * @param vsModelADependent against the argmax-correct trigrams whose prediction depends on a
     *                          ({@link DatasetTrigram#aDependent()}; {@link #recallVsADependent})
     * @param vsModelConfident against the argmax-correct trigrams with P(c) above the extraction's cut
     * @param nPredictedUnconfident how many are argmax-correct with P(c) at most the cut, and meanProbUnconfident
     *                              their mean P(c): right by a small margin, not by a learned rule
     * @param nArgmaxCorrectNotExtracted argmax-correct trigrams the extraction does not list
     * @param nNotExtractedBigramDefaults how many of those have their (b, c) among the bigram defaults: the model
     *                                    gets them right by what b alone predicts
     * @param bigramDefaultsVsDataset the bigram defaults' (b, c) against the dataset's distinct (b, c) pairs
     * @param datasetTrigrams every dataset trigram, in generation order, with the model's numbers
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    @JsonPropertyOrder({"seed", "trigram_prob", "vs_dataset", "vs_model", "vs_model_a_dependent", "vs_model_confident",
            "n_predicted_unconfident", "mean_prob_unconfident", "a_dependence_ratio", "n_argmax_correct",
            "n_a_dependent", "recall_vs_argmax_correct", "recall_vs_a_dependent", "n_argmax_correct_not_extracted",
            "n_not_extracted_bigram_defaults", "bigram_defaults_vs_dataset", "dataset_trigrams"})
    public record Evaluation(long seed, double trigramProb, Agreement vsDataset, Agreement vsModel,
                             @JsonProperty("vs_model_a_dependent") Agreement vsModelADependent,
                             Agreement vsModelConfident, int nPredictedUnconfident,
                             double meanProbUnconfident, int nArgmaxCorrectNotExtracted,
                             int nNotExtractedBigramDefaults, PairAgreement bigramDefaultsVsDataset,
                             List<DatasetTrigram> datasetTrigrams) {

        /** Extracted and argmax-correct, over every argmax-correct trigram (a-dependent or not). */
        @JsonProperty("recall_vs_argmax_correct")
        public double recallVsArgmaxCorrect() {
            return vsModel.recall();
        }

        /** Extracted and argmax-correct, over the argmax-correct trigrams whose prediction depends on a. */
        @JsonProperty("recall_vs_a_dependent")
        public double recallVsADependent() {
            return vsModelADependent.recall();
        }

        /** How many dataset trigrams the model gets right by argmax (the challenge's trigram_n_correct). */
        @JsonProperty("n_argmax_correct")
        public int nArgmaxCorrect() {
            return vsModel.nReference();
        }

        /** How many of the argmax-correct trigrams depend on a. */
        @JsonProperty("n_a_dependent")
        public int nADependent() {
            return vsModelADependent.nReference();
        }

        /** {@link #A_DEPENDENCE_RATIO}, written beside the counts it defines. */
        @JsonProperty("a_dependence_ratio")
        public double aDependenceRatio() {
            return A_DEPENDENCE_RATIO;
        }
    }

    public static Evaluation evaluate(TrigramExtractor.Result r, HookedTransformer model, TrigramDataset data) {
        int[][] all = data.trigrams();
        int V = data.dVocab();
        double[] probC = new double[all.length];
        boolean[] predicted = predictedTrigrams(model, data, probC);
        double[] medianOther = medianOverOtherA(model, data);
        List<int[]> modelSet = new ArrayList<>(), aDependent = new ArrayList<>(), confident = new ArrayList<>();
        List<DatasetTrigram> rows = new ArrayList<>();
        double unconfidentProb = 0;
        int notExtracted = 0, notExtractedDefault = 0;
        for (int i = 0; i < all.length; i++) {
            int a = all[i][0], b = all[i][1], c = all[i][2];
            boolean dependent = probC[i] > A_DEPENDENCE_RATIO * medianOther[i];
            boolean extracted = r.completionOf(a, b) == c;
            boolean isDefault = r.bigramDefaultOf(b) == c;
            rows.add(new DatasetTrigram(a, b, c, predicted[i], probC[i], medianOther[i], dependent, extracted,
                    isDefault));
            if (predicted[i]) {
                modelSet.add(all[i]);
                if (dependent) {
                    aDependent.add(all[i]);
                }
                if (r.cut().keeps(probC[i])) {
                    confident.add(all[i]);
                } else {
                    unconfidentProb += probC[i];
                }
                if (!extracted) {
                    notExtracted++;
                    notExtractedDefault += isDefault ? 1 : 0;
                }
            }
        }
        int nUnconfident = modelSet.size() - confident.size();
        return new Evaluation(data.seed(), data.trigramProb(), compare(r, Arrays.asList(all), V),
                compare(r, modelSet, V), compare(r, aDependent, V), compare(r, confident, V), nUnconfident,
                nUnconfident == 0 ? Double.NaN : unconfidentProb / nUnconfident, notExtracted, notExtractedDefault,
                compareBigrams(r, all, V), List.copyOf(rows));
    }

    /**
     * Per dataset trigram, in generation order: the median over every a' != a of the model's P(c | a', b) at position
     * 1 of [a', b, c], one batch of d_vocab sequences per distinct b (position 1 does not see c, so one c serves).
     */
    public static double[] medianOverOtherA(HookedTransformer model, TrigramDataset data) {
        int[][] all = data.trigrams();
        int V = data.dVocab();
        double[] out = new double[all.length];
        Map<Integer, List<Integer>> byB = new LinkedHashMap<>();
        for (int i = 0; i < all.length; i++) {
            byB.computeIfAbsent(all[i][1], k -> new ArrayList<>()).add(i);
        }
        int[] tokens = new int[V * 3];
        double[] others = new double[V];
        for (Map.Entry<Integer, List<Integer>> e : byB.entrySet()) {
            int b = e.getKey();
            for (int a = 0; a < V; a++) {
                tokens[a * 3] = a;
                tokens[a * 3 + 1] = b;
                tokens[a * 3 + 2] = all[e.getValue().get(0)][2];
            }
            Tensor logits = model.forward(tokens, V, 3);
            int LV = logits.dim(2);
            for (int i : e.getValue()) {
                int n = 0;
                for (int a = 0; a < V; a++) {
                    if (a != all[i][0]) {
                        others[n++] = Math.exp(Logits.logProb(logits.data(), (a * 3 + 1) * LV, LV, all[i][2]));
                    }
                }
                out[i] = TrigramExtractor.median(others, n);
            }
        }
        return out;
    }

    /** Per dataset trigram, in generation order: does the model's argmax at position 1 of [a, b, c] equal c? */
    public static boolean[] predictedTrigrams(HookedTransformer model, TrigramDataset data) {
        return predictedTrigrams(model, data, new double[data.nTrigrams()]);
    }

    /** Same, also filling probC[i] with the model's P(c) there. */
    public static boolean[] predictedTrigrams(HookedTransformer model, TrigramDataset data, double[] probC) {
        int n = data.nTrigrams();
        boolean[] out = new boolean[n];
        if (n == 0) {
            return out;
        }
        Tensor logits = model.forward(data.trigramBatch(), n, 3);
        int V = logits.dim(2);
        int[][] t = data.trigrams();
        for (int i = 0; i < n; i++) {
            int row = TrigramDataset.predictionRow(i, V);
            out[i] = Logits.argmax(logits.data(), row, V) == t[i][2];
            probC[i] = Math.exp(Logits.logProb(logits.data(), row, V, t[i][2]));
        }
        return out;
    }

    static Agreement compare(TrigramExtractor.Result r, List<int[]> reference, int V) {
        int[] refC = new int[V * V];
        Arrays.fill(refC, -1);
        for (int[] t : reference) {
            refC[t[0] * V + t[1]] = t[2];
        }
        int correct = 0, prefix = 0;
        for (TrigramExtractor.Entry e : r.trigrams()) {
            int c = refC[e.a() * V + e.b()];
            if (c >= 0) {
                prefix++;
                if (c == e.c()) {
                    correct++;
                }
            }
        }
        int nE = r.trigrams().size(), nR = reference.size();
        return new Agreement(nE, nR, correct, ratio(correct, nE), ratio(correct, nR), prefix, ratio(prefix, nE),
                ratio(prefix, nR));
    }

    static PairAgreement compareBigrams(TrigramExtractor.Result r, int[][] trigrams, int V) {
        boolean[] reference = new boolean[V * V];
        int nReference = 0;
        for (int[] t : trigrams) {
            if (!reference[t[1] * V + t[2]]) {
                reference[t[1] * V + t[2]] = true;
                nReference++;
            }
        }
        int correct = 0;
        for (TrigramExtractor.BigramDefault d : r.bigramDefaults()) {
            correct += reference[d.b() * V + d.c()] ? 1 : 0;
        }
        int nListed = r.bigramDefaults().size();
        return new PairAgreement(nListed, nReference, correct, ratio(correct, nListed), ratio(correct, nReference));
    }

    private static double ratio(int num, int den) {
        return den == 0 ? Double.NaN : num / (double) den;
    }
}
