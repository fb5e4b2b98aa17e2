package dev.trilens.serve;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Probe;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The JSON API of `serve`, over a real socket: every endpoint, every refused request, concurrent clients. */
class ProbeServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ModelConfig CFG = new ModelConfig(12, 8, 16, 1, 1, 8, 8, false);
    private static Probe probeA, probeB;
    private static ProbeServer server, single;
    private static RawHttp http, httpSingle;

    @BeforeAll
    static void start() {
        TrigramDataset data = TrigramDataset.generate(12, 8, 0.1, 3, 20);
        probeA = Probe.of(Weights.init(CFG, 1), data);
        probeB = Probe.of(Weights.init(CFG, 2), data);
        server = new ProbeServer(new ProbeServer.Model(probeA, "a.safetensors"),
                new ProbeServer.Model(probeB, "b.safetensors")).start("127.0.0.1", 0);
        single = new ProbeServer(new ProbeServer.Model(probeA, "a.safetensors"), null).start("127.0.0.1", 0);
        http = new RawHttp(server.port());
        httpSingle = new RawHttp(single.port());
    }

    @AfterAll
    static void stop() {
        server.close();
        single.close();
    }

    /** What the server should answer for value: `predict --json` writes it with the same writer. */
    private static JsonNode expected(Object value) throws Exception {
        return JSON.readTree(Probe.JSON.writeValueAsBytes(value));
    }

    private static JsonNode ok(RawHttp.Response r) throws Exception {
        assertThat(r.status()).as(r.body()).isEqualTo(200);
        assertThat(r.header("Content-Type")).startsWith("application/json");
        return JSON.readTree(r.body());
    }

    private static void bad(int status, String expected, RawHttp.Response r) throws Exception {
        assertThat(r.status()).as(r.body()).isEqualTo(status);
        JsonNode j = JSON.readTree(r.body());
        assertThat(j.fieldNames()).toIterable().containsExactly("error");
        assertThat(j.get("error").asText()).contains(expected);
    }

    @Test
    void predictAnswersWhatPredictJsonPrints() throws Exception {
        int[] t = {3, 4, 5, 6, 1};
        JsonNode j = ok(http.postJson("/api/predict", "{\"tokens\": [3, 4, 5, 6, 1]}"));
        assertThat(j).isEqualTo(expected(probeA.predict(t, ProbeServer.DEFAULT_TOP)));
        assertThat(j.get("positions").size()).isEqualTo(5);
        JsonNode b = ok(http.postJson("/api/predict", "{\"tokens\": [3, 4, 5, 6, 1], \"top\": 5, \"which\": \"b\"}"));
        assertThat(b).isEqualTo(expected(probeB.predict(t, 5)));
    }

    @Test
    void everyEndpointAnswers() throws Exception {
        JsonNode m = ok(http.get("/api/model"));
        assertThat(m.at("/a/name").asText()).isEqualTo("a.safetensors");
        assertThat(m.at("/a/config/d_vocab").asInt()).isEqualTo(12);
        assertThat(m.at("/a/heads").toString()).isEqualTo("[\"L0H0\"]");
        assertThat(m.at("/a/ablation_targets").toString()).contains("L0H0", "L0.mlp_out");
        assertThat(m.at("/a/trigrams").size()).isEqualTo(probeA.rules().trigrams().size());
        assertThat(m.at("/b/name").asText()).isEqualTo("b.safetensors");
        assertThat(m.at("/eval/size").asInt()).isEqualTo(20);
        assertThat(ok(httpSingle.get("/api/model")).get("b").isNull()).isTrue();

        JsonNode s = ok(http.get("/api/sequence?index=3"));
        assertThat(s.get("tokens").toString()).isEqualTo(Arrays.toString(probeA.data().tokensOf(3, 4))
                .replace(" ", ""));
        assertThat(s.get("completes").size()).isEqualTo(8);

        JsonNode d = ok(http.postJson("/api/dla", "{\"tokens\": [3, 4, 5, 6], \"pos\": 2}"));
        assertThat(d.get("pos").asInt()).isEqualTo(2);
        double sum = 0;
        assertThat(d.get("components")).isNotEmpty();
        for (JsonNode c : d.get("components")) {
            sum += c.get("value").asDouble();
        }
        assertThat(sum).isCloseTo(d.get("total").asDouble(), org.assertj.core.api.Assertions.within(1e-4));

        JsonNode p = ok(http.postJson("/api/patch", "{\"tokens\": [3, 4, 5, 6], \"pos\": 3, \"attend\": 0}"));
        assertThat(p.get("query_pos").asInt()).isEqualTo(3);
        assertThat(p.get("new_key_pos").asInt()).isEqualTo(0);
        assertThat(p.get("before").get("token").asInt())
                .isEqualTo(probeA.predict(new int[] {3, 4, 5, 6}, 1).positions().get(3).top().get(0).token());
        assertThat(p.has("rule_before")).isTrue();
        assertThat(p.has("rule_after")).isTrue();

        JsonNode z = ok(http.postJson("/api/ablate", "{\"tokens\": [3, 4, 5, 6], \"target\": \"L0.mlp_out\", "
                + "\"mode\": \"zero\"}"));
        assertThat(z.get("intervention").asText()).startsWith("zero-ablating L0.mlp_out");
        assertThat(z.get("positions").size()).isEqualTo(4);
        JsonNode mean = ok(http.postJson("/api/ablate", "{\"tokens\": [3, 4, 5, 6], \"target\": \"L0H0\", "
                + "\"mode\": \"mean\"}"));
        assertThat(mean.get("intervention").asText()).startsWith("mean-ablating L0H0");

        JsonNode f = ok(http.postJson("/api/force-rule", "{\"tokens\": [3, 4, 5, 6]}"));
        assertThat(f.get("positions").size()).isEqualTo(4);

        JsonNode c = ok(http.postJson("/api/compare", "{\"tokens\": [3, 4, 5, 6]}"));
        assertThat(c.get("a")).isEqualTo(expected(probeA.predict(new int[] {3, 4, 5, 6}, 3)));
        assertThat(c.get("b")).isEqualTo(expected(probeB.predict(new int[] {3, 4, 5, 6}, 3)));
        assertThat(c.at("/diff/same_shape").asBoolean()).isTrue();
        assertThat(c.at("/diff/correlations").size()).isPositive();
        assertThat(c.get("top1_agree").asInt()).isBetween(0, 4);
        bad(400, "there is no second model to compare with; start serve with --model-b",
                httpSingle.postJson("/api/compare", "{\"tokens\": [3, 4, 5, 6]}"));

        RawHttp.Response page = http.get("/");
        assertThat(page.status()).isEqualTo(200);
        assertThat(page.header("Content-Type")).startsWith("text/html");
        assertThat(page.header("Content-Security-Policy")).contains("frame-ancestors 'none'");
        assertThat(page.body()).contains("/api/predict");
    }

    @Test
    void badRequestsAre400WithTheProblemNamed() throws Exception {
        bad(400, "token 12 at position 1 is outside the vocabulary 0..11",
                http.postJson("/api/predict", "{\"tokens\": [1, 12]}"));
        bad(400, "token -1 at position 0 is outside the vocabulary 0..11",
                http.postJson("/api/predict", "{\"tokens\": [-1]}"));
        bad(400, "the token sequence has 9 tokens, more than the model's n_ctx of 8",
                http.postJson("/api/predict", "{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}"));
        bad(400, "the token sequence is empty", http.postJson("/api/predict", "{\"tokens\": []}"));
        bad(400, "tokens[1] is \"2\", not a token id 0..11", http.postJson("/api/predict", "{\"tokens\": [1, \"2\"]}"));
        bad(400, "tokens[0] is 1.5, not a token id", http.postJson("/api/predict", "{\"tokens\": [1.5]}"));
        bad(400, "tokens[0] is 99999999999, not a token id",
                http.postJson("/api/predict", "{\"tokens\": [99999999999]}"));
        bad(400, "'tokens' must be an array of token ids, got string", http.postJson("/api/predict",
                "{\"tokens\": \"1 2\"}"));
        bad(400, "missing field 'tokens'", http.postJson("/api/predict", "{}"));
        bad(400, "malformed JSON", http.postJson("/api/predict", "{\"tokens\": [1, 2"));
        bad(400, "malformed JSON", http.postJson("/api/predict", "{\"tokens\": [1]} trailing"));
        bad(400, "malformed JSON", http.postJson("/api/predict", "{\"tokens\": [1], \"tokens\": [2]}"));
        bad(400, "the body must be a JSON object, got array", http.postJson("/api/predict", "[1, 2]"));
        bad(400, "the request body is empty", http.postJson("/api/predict", ""));
        bad(400, "unknown field 'model'; this endpoint takes tokens, top, which",
                http.postJson("/api/predict", "{\"tokens\": [1], \"model\": \"/etc/passwd\"}"));
        bad(400, "which must be 'a' or 'b', got 'c'", http.postJson("/api/predict", "{\"tokens\": [1], "
                + "\"which\": \"c\"}"));
        bad(400, "which is 'b', but there is no second model", httpSingle.postJson("/api/predict",
                "{\"tokens\": [1], \"which\": \"b\"}"));
        bad(400, "top must be 1..12, got 13", http.postJson("/api/predict", "{\"tokens\": [1], \"top\": 13}"));
        bad(400, "'top' must be a whole number, got \"3\"", http.postJson("/api/predict",
                "{\"tokens\": [1], \"top\": \"3\"}"));
        bad(400, "unknown mode 'half'; expected zero or mean", http.postJson("/api/ablate",
                "{\"tokens\": [1, 2], \"target\": \"L0H0\", \"mode\": \"half\"}"));
        bad(400, "unknown ablation target 'L9H9'; expected one of [L0H0, L0.mlp_out, pos_embed]",
                http.postJson("/api/ablate", "{\"tokens\": [1, 2], \"target\": \"L9H9\"}"));
        bad(400, "missing field 'target'", http.postJson("/api/ablate", "{\"tokens\": [1, 2]}"));
        bad(400, "position 1 can only attend positions 0..1 (causal mask), got 2",
                http.postJson("/api/patch", "{\"tokens\": [1, 2, 3], \"pos\": 1, \"attend\": 2}"));
        bad(400, "query position 5 out of range; expected 0..2",
                http.postJson("/api/patch", "{\"tokens\": [1, 2, 3], \"pos\": 5, \"attend\": 2}"));
        bad(400, "missing field 'attend'", http.postJson("/api/patch", "{\"tokens\": [1, 2, 3], \"pos\": 1}"));
        bad(400, "head 3 out of range", http.postJson("/api/patch",
                "{\"tokens\": [1, 2, 3], \"pos\": 1, \"attend\": 0, \"head\": 3}"));
        bad(400, "position 4 is outside the sequence of 3 tokens", http.postJson("/api/dla",
                "{\"tokens\": [1, 2, 3], \"pos\": 4}"));
        bad(400, "index 20 is outside the evaluation batch of 20 sequences (0..19)", http.get("/api/sequence?index=20"));
        bad(400, "index must be a sequence number 0..19, got 'x'", http.get("/api/sequence?index=x"));
        bad(404, "no such page or API endpoint: GET /api/nothing", http.get("/api/nothing"));
        bad(405, "GET is not allowed on /api/predict", http.get("/api/predict"));
        bad(400, "Content-Type: application/json, got 'text/plain'", http.send("POST", "/api/predict",
                Map.of("Host", http.host(), "Content-Type", "text/plain"), "{\"tokens\":[1]}".getBytes(), false));

        byte[] huge = new byte[ProbeServer.MAX_BODY + 10];
        Arrays.fill(huge, (byte) ' ');
        bad(400, "the request body of " + huge.length + " bytes is larger than the limit of " + ProbeServer.MAX_BODY,
                http.send("POST", "/api/predict", Map.of("Host", http.host(), "Content-Type", "application/json"),
                        huge, false));
        bad(400, "the request body is larger than the limit of " + ProbeServer.MAX_BODY + " bytes",
                http.send("POST", "/api/predict", Map.of("Host", http.host(), "Content-Type", "application/json"),
                        huge, true));
        // none of it hurt the server
        ok(http.postJson("/api/predict", "{\"tokens\": [1, 2]}"));
    }

    @Test
    void foreignHostsAndOriginsAreRefused() throws Exception {
        String json = "{\"tokens\": [1, 2]}";
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        int port = server.port();
        for (String host : List.of("evil.example", "evil.example:" + port, "127.0.0.1:" + (port + 1),
                "127.0.0.2:" + port, "localhost.evil.example:" + port)) {
            bad(403, "refused: the Host header '" + host + "' is not this server",
                    http.send("POST", "/api/predict", Map.of("Host", host, "Content-Type", "application/json"),
                            body, false));
            bad(403, "refused", http.send("GET", "/", Map.of("Host", host), null, false));
        }
        bad(403, "refused: the Host header is missing", http.send("GET /api/model HTTP/1.0", Map.of(), null, false));
        for (String host : List.of("127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port,
                "[::1]:" + port)) {
            ok(http.send("POST", "/api/predict", Map.of("Host", host, "Content-Type", "application/json"), body,
                    false));
        }
        bad(403, "refused: cross-origin request from 'http://evil.example'", http.send("POST", "/api/predict",
                Map.of("Host", http.host(), "Origin", "http://evil.example", "Content-Type", "application/json"),
                body, false));
        bad(403, "refused: a cross-site request", http.send("POST", "/api/predict",
                Map.of("Host", http.host(), "Sec-Fetch-Site", "cross-site", "Content-Type", "application/json"),
                body, false));
        ok(http.send("POST", "/api/predict", Map.of("Host", http.host(), "Origin", "http://" + http.host(),
                "Sec-Fetch-Site", "same-origin", "Content-Type", "application/json"), body, false));
        // a CORS preflight gets no permission
        RawHttp.Response pre = http.send("OPTIONS", "/api/predict", Map.of("Host", http.host(), "Origin",
                "http://evil.example", "Access-Control-Request-Method", "POST"), null, false);
        assertThat(pre.status()).isEqualTo(403);
        assertThat(pre.header("Access-Control-Allow-Origin")).isNull();
        RawHttp.Response same = http.postJson("/api/predict", json);
        assertThat(same.header("Access-Control-Allow-Origin")).isNull();
    }

    @Test
    void concurrentClientsEachGetTheirOwnAnswer() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int c = 0; c < 8; c++) {
                int client = c;
                results.add(pool.submit(() -> {
                    for (int i = 0; i < 15; i++) {
                        int[] t = new int[1 + (client + i) % 8];
                        for (int k = 0; k < t.length; k++) {
                            t[k] = (client * 5 + i * 3 + k * 7) % 12;
                        }
                        JsonNode expected = expected(probeA.predict(t, 3));
                        JsonNode got = ok(http.postJson("/api/predict", JSON.writeValueAsString(Map.of("tokens",
                                t))));
                        if (!expected.equals(got)) {
                            return false;
                        }
                    }
                    return true;
                }));
            }
            for (Future<Boolean> f : results) {
                assertThat(f.get()).isTrue();
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
