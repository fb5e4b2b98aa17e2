package dev.trilens.serve;

import com.fasterxml.jackson.annotation.JsonUnwrapped;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Ablation;
import dev.trilens.interp.ModelDiff;
import dev.trilens.interp.Patching;
import dev.trilens.interp.Probe;
import dev.trilens.interp.TrigramExtractor;
import dev.trilens.model.ModelConfig;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import io.javalin.http.HttpStatus;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * `trilens serve`: one page and a JSON API over one or two {@link Probe}s, on Javalin (Jetty).
 *
 * <p>Security: the models are fixed when the server is built; no request names a file or a model beyond "a" or
 * "b". Requests whose Host header is not the bound address, localhost, 127.0.0.1 or [::1] at the bound port are
 * refused (DNS rebinding), as are requests a browser marks cross-origin (Origin or Sec-Fetch-Site); no CORS header
 * is ever sent. Bodies are read up to {@link #MAX_BODY} bytes. Every bad request is a 400 with {@code {"error":
 * "..."}} naming the problem.
 *
 * <p>Concurrency: each request runs its own forward passes on the shared, read-only weights (see {@link Probe}).
 */
public final class ProbeServer implements AutoCloseable {
    /** Largest request body accepted, in bytes: a full sequence of token ids is well under 1 KB. */
    public static final int MAX_BODY = 16 * 1024;
    /** Largest top-k a request may ask for is the vocabulary; this is the default. */
    public static final int DEFAULT_TOP = 3;

    private static final ObjectMapper JSON = Probe.JSON.copy()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final Set<String> LOOPBACK_NAMES = Set.of("localhost", "127.0.0.1", "[::1]");

    /** One model the server shows: its probe and the name it is shown under (the file name, never a path). */
    public record Model(Probe probe, String name) {
    }

    private final Model a;
    private final Model b;
    private final ModelDiff diff;
    private final String page;
    private Javalin app;
    private RequestTimer timer;
    private String host;
    private int port;

    static {
        // Jetty and Javalin log their start-up at INFO; the command prints what a user needs itself
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
    }

    /** b may be null (one model). The two-model diff is computed here, once. */
    public ProbeServer(Model a, Model b) {
        this.a = a;
        this.b = b;
        this.diff = b == null ? null : ModelDiff.of(a.probe(), b.probe());
        try (InputStream in = ProbeServer.class.getResourceAsStream("probe.html")) {
            if (in == null) {
                throw new IllegalStateException("probe.html is missing from the build");
            }
            this.page = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Told, after each request, how long the server took to answer it (for the benchmark). */
    @FunctionalInterface
    public interface RequestTimer {
        void answered(String path, int status, double millis);
    }

    /** Sets the timer; call before {@link #start}. */
    public ProbeServer timed(RequestTimer t) {
        this.timer = t;
        return this;
    }

    /** Starts listening; port 0 picks a free port. Returns once connections are accepted. */
    public synchronized ProbeServer start(String bindHost, int bindPort) {
        this.host = bindHost;
        app = Javalin.create(config -> {
            config.showJavalinBanner = false;
            config.startupWatcherEnabled = false;
            config.http.maxRequestSize = MAX_BODY;
            config.http.disableCompression();
            config.http.prefer405over404 = true;
            RequestTimer t = timer;
            if (t != null) {
                config.requestLogger.http((ctx, ms) -> t.answered(ctx.path(), ctx.statusCode(), ms));
            }
        });
        app.before(this::guard);
        app.get("/", ctx -> ctx.contentType("text/html; charset=utf-8").result(page));
        app.get("/api/model", ctx -> json(ctx, modelInfo()));
        app.get("/api/sequence", this::sequence);
        app.post("/api/predict", api(this::predict));
        app.post("/api/dla", api(this::dla));
        app.post("/api/patch", api(this::patch));
        app.post("/api/ablate", api(this::ablate));
        app.post("/api/force-rule", api(this::forceRule));
        app.post("/api/compare", api(this::compare));
        app.exception(BadRequest.class, (e, ctx) -> error(ctx, e.status, e.getMessage()));
        app.exception(TrilensException.class, (e, ctx) -> error(ctx, HttpStatus.BAD_REQUEST, e.getMessage()));
        app.exception(Exception.class, (e, ctx) -> error(ctx, HttpStatus.INTERNAL_SERVER_ERROR,
                "internal error: " + e));
        app.error(404, ctx -> error(ctx, HttpStatus.NOT_FOUND, "no such page or API endpoint: " + ctx.method()
                + " " + ctx.path()));
        app.error(405, ctx -> error(ctx, HttpStatus.METHOD_NOT_ALLOWED, ctx.method() + " is not allowed on "
                + ctx.path()));
        app.start(bindHost, bindPort);
        port = app.port();
        return this;
    }

    public int port() {
        return port;
    }

    /** The address to open, e.g. http://127.0.0.1:8080 (an IPv6 host in brackets). */
    public String url() {
        String h = host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host;
        return "http://" + h + ":" + port;
    }

    @Override
    public synchronized void close() {
        if (app != null) {
            app.stop();
            app = null;
        }
    }

    // -------------------------------------------------------------------------------------------------------------
    // Guards

    /** Refuses foreign Host headers and cross-origin requests before any handler runs. */
    private void guard(Context ctx) {
        String hostHeader = ctx.header("Host");
        if (hostHeader == null || !allowedHost(hostHeader)) {
            throw new BadRequest(HttpStatus.FORBIDDEN, "refused: the Host header "
                    + (hostHeader == null ? "is missing" : "'" + abbreviate(hostHeader) + "' is not this server")
                    + "; use " + url());
        }
        String origin = ctx.header("Origin");
        if (origin != null && !origin.equalsIgnoreCase("http://" + hostHeader)) {
            throw new BadRequest(HttpStatus.FORBIDDEN, "refused: cross-origin request from '" + abbreviate(origin)
                    + "'; this server answers only its own page");
        }
        String site = ctx.header("Sec-Fetch-Site");
        if (site != null && !site.equals("same-origin") && !site.equals("none")) {
            throw new BadRequest(HttpStatus.FORBIDDEN, "refused: a " + abbreviate(site) + " request; this server "
                    + "answers only its own page");
        }
        ctx.header("X-Content-Type-Options", "nosniff");
        ctx.header("X-Frame-Options", "DENY");
        ctx.header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; "
                + "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'");
        ctx.header("Cache-Control", "no-store");
    }

    private boolean allowedHost(String header) {
        String h = header.trim().toLowerCase(Locale.ROOT);
        int colon = h.lastIndexOf(':');
        String name = h;
        String portText = null;
        if (colon > h.lastIndexOf(']')) {
            name = h.substring(0, colon);
            portText = h.substring(colon + 1);
        }
        if (portText == null ? port != 80 : !portText.equals(Integer.toString(port))) {
            return false;
        }
        String bound = host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host;
        return LOOPBACK_NAMES.contains(name) || name.equals(bound.toLowerCase(Locale.ROOT));
    }

    // -------------------------------------------------------------------------------------------------------------
    // Endpoints

    /** A POST endpoint: the body is read (size-limited) and parsed here; the function maps it to the answer. */
    private interface Api {
        Object answer(Request req);
    }

    private Handler api(Api f) {
        return ctx -> {
            String type = ctx.contentType();
            if (type == null || !type.toLowerCase(Locale.ROOT).startsWith("application/json")) {
                throw new BadRequest(HttpStatus.BAD_REQUEST, "the body must be JSON sent as Content-Type: "
                        + "application/json, got " + (type == null ? "none" : "'" + abbreviate(type) + "'"));
            }
            json(ctx, f.answer(new Request(readBody(ctx))));
        };
    }

    private static JsonNode readBody(Context ctx) throws IOException {
        long declared = ctx.req().getContentLengthLong();
        if (declared > MAX_BODY) {
            throw new BadRequest(HttpStatus.BAD_REQUEST, "the request body of " + declared + " bytes is larger than "
                    + "the limit of " + MAX_BODY + " bytes");
        }
        byte[] body = ctx.req().getInputStream().readNBytes(MAX_BODY + 1);
        if (body.length > MAX_BODY) {
            throw new BadRequest(HttpStatus.BAD_REQUEST, "the request body is larger than the limit of " + MAX_BODY
                    + " bytes");
        }
        if (body.length == 0) {
            throw new BadRequest(HttpStatus.BAD_REQUEST, "the request body is empty; expected a JSON object");
        }
        try {
            return JSON.readTree(body);
        } catch (JsonProcessingException e) {
            throw new BadRequest(HttpStatus.BAD_REQUEST, "malformed JSON: " + e.getOriginalMessage()
                    + " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")");
        }
    }

    private Object predict(Request r) {
        r.allow("tokens", "top", "which");
        Model m = r.which();
        return m.probe().predict(r.tokens(m), r.top(m));
    }

    private Object dla(Request r) {
        r.allow("tokens", "pos", "which");
        Model m = r.which();
        return m.probe().dla(r.tokens(m), r.integer("pos", null));
    }

    private Object patch(Request r) {
        r.allow("tokens", "pos", "attend", "layer", "head", "which");
        Model m = r.which();
        int[] t = r.tokens(m);
        int pos = r.integer("pos", null), attend = r.integer("attend", null);
        var swap = m.probe().patch(t, pos, attend, r.integer("layer", -1), r.integer("head", -1));
        return new PatchReply(swap, pos > 0 ? m.probe().ruleFor(t[pos - 1], t[pos]) : -1,
                m.probe().ruleFor(t[attend], t[pos]));
    }

    private Object ablate(Request r) {
        r.allow("tokens", "target", "mode", "which");
        Model m = r.which();
        String mode = r.string("mode", "zero");
        Ablation.Mode md = switch (mode) {
            case "zero" -> Ablation.Mode.ZERO;
            case "mean" -> Ablation.Mode.MEAN;
            default -> throw new TrilensException("unknown mode '" + abbreviate(mode) + "'; expected zero or mean");
        };
        return m.probe().ablate(r.tokens(m), r.string("target", null), md);
    }

    private Object forceRule(Request r) {
        r.allow("tokens", "which");
        Model m = r.which();
        return m.probe().forceRule(r.tokens(m));
    }

    private Object compare(Request r) {
        r.allow("tokens", "top");
        if (b == null) {
            throw new TrilensException("there is no second model to compare with; start serve with --model-b");
        }
        int[] t = r.tokens(a);
        Probe.checkTokens(t, b.probe().config());
        int top = r.top(a);
        Probe.Prediction pa = a.probe().predict(t, top), pb = b.probe().predict(t, top);
        int agree = 0;
        for (int i = 0; i < t.length; i++) {
            agree += pa.positions().get(i).top().get(0).token() == pb.positions().get(i).top().get(0).token() ? 1 : 0;
        }
        return new CompareReply(pa, pb, agree, diff);
    }

    private void sequence(Context ctx) throws JsonProcessingException {
        TrigramDataset data = a.probe().data();
        if (data == null) {
            throw new TrilensException("no evaluation batch is known for this model");
        }
        String q = ctx.queryParam("index");
        int index;
        try {
            index = Integer.parseInt(q == null ? "" : q);
        } catch (NumberFormatException e) {
            throw new TrilensException("index must be a sequence number 0.." + (data.size() - 1) + ", got "
                    + (q == null ? "none" : "'" + abbreviate(q) + "'"));
        }
        if (index < 0 || index >= data.size()) {
            throw new TrilensException("index " + index + " is outside the evaluation batch of " + data.size()
                    + " sequences (0.." + (data.size() - 1) + ")");
        }
        List<Boolean> completes = new ArrayList<>();
        for (int p = 0; p < data.seqLen(); p++) {
            completes.add(data.completesTrigram(index, p));
        }
        json(ctx, new SequenceReply(index, data.tokensOf(index, index + 1), completes));
    }

    /** The reply to PATCH: the swap (its fields inline) and the extracted rule at the query before and after it. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record PatchReply(@JsonUnwrapped Patching.SwapResult swap, int ruleBefore, int ruleAfter) {
    }

    /** The two models' predictions on one sequence, how many positions agree on the top token, and their diff. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record CompareReply(Probe.Prediction a, Probe.Prediction b, int top1Agree,
                        ModelDiff diff) {
    }

    /** One sequence of the evaluation batch, and where the dataset forces a trigram's completion. */
    record SequenceReply(int index, int[] tokens, List<Boolean> completes) {
    }

    /** What the page needs to start: each model (b null with one), the evaluation batch (null if unknown). */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record InfoReply(ModelInfo a, ModelInfo b, EvalBatch eval, int maxBody) {
    }

    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record EvalBatch(long seed, double trigramProb, int size) {
    }

    /** A model as the page shows it: its name, shape, heads, what can be ablated, and its extracted rules. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record ModelInfo(String name, Shape config, List<String> heads, List<String> ablationTargets,
                     List<String> ablationModes, List<Rule> trigrams) {
    }

    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record Shape(int dVocab, int nCtx, int dModel, int nLayers, int nHeads, int dHead, int dMlp, boolean layerNorm) {
    }

    record Rule(int a, int b, int c, double confidence) {
    }

    private InfoReply modelInfo() {
        TrigramDataset data = a.probe().data();
        return new InfoReply(describe(a), b == null ? null : describe(b),
                data == null ? null : new EvalBatch(data.seed(), data.trigramProb(), data.size()), MAX_BODY);
    }

    private static ModelInfo describe(Model m) {
        Probe p = m.probe();
        ModelConfig cfg = p.config();
        List<Rule> table = new ArrayList<>();
        for (TrigramExtractor.Entry e : p.rules().trigrams()) {
            table.add(new Rule(e.a(), e.b(), e.c(), e.confidence()));
        }
        return new ModelInfo(m.name(), new Shape(cfg.dVocab(), cfg.nCtx(), cfg.dModel(), cfg.nLayers(), cfg.nHeads(),
                cfg.dHead(), cfg.dMlp(), cfg.layerNorm()), p.headNames(), p.ablationTargets(),
                p.data() == null ? List.of("zero") : List.of("zero", "mean"), table);
    }

    // -------------------------------------------------------------------------------------------------------------
    // Requests and answers

    /** A parsed JSON body, checked field by field, with one message naming the first problem. */
    private final class Request {
        private final ObjectNode body;

        Request(JsonNode node) {
            if (!(node instanceof ObjectNode o)) {
                throw new TrilensException("the body must be a JSON object, got " + node.getNodeType()
                        .toString().toLowerCase(Locale.ROOT));
            }
            this.body = o;
        }

        void allow(String... names) {
            Set<String> ok = Set.of(names);
            for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (!ok.contains(f)) {
                    throw new TrilensException("unknown field '" + abbreviate(f) + "'; this endpoint takes "
                            + String.join(", ", names));
                }
            }
        }

        Model which() {
            String w = string("which", "a");
            if (w.equals("a")) {
                return a;
            }
            if (w.equals("b")) {
                if (b == null) {
                    throw new TrilensException("which is 'b', but there is no second model; start serve with "
                            + "--model-b");
                }
                return b;
            }
            throw new TrilensException("which must be 'a' or 'b', got '" + abbreviate(w) + "'");
        }

        int[] tokens(Model m) {
            JsonNode t = body.get("tokens");
            if (t == null || t.isNull()) {
                throw new TrilensException("missing field 'tokens': an array of token ids");
            }
            if (!t.isArray()) {
                throw new TrilensException("'tokens' must be an array of token ids, got " + kind(t));
            }
            int[] out = new int[t.size()];
            for (int i = 0; i < out.length; i++) {
                JsonNode v = t.get(i);
                if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                    throw new TrilensException("tokens[" + i + "] is " + abbreviate(v.toString()) + ", not a token "
                            + "id 0.." + (m.probe().config().dVocab() - 1));
                }
                out[i] = v.intValue();
            }
            return Probe.checkTokens(out, m.probe().config());
        }

        int top(Model m) {
            int k = integer("top", DEFAULT_TOP);
            int V = m.probe().config().dVocab();
            if (k < 1 || k > V) {
                throw new TrilensException("top must be 1.." + V + ", got " + k);
            }
            return k;
        }

        int integer(String name, Integer fallback) {
            JsonNode v = body.get(name);
            if (v == null || v.isNull()) {
                if (fallback == null) {
                    throw new TrilensException("missing field '" + name + "': a whole number");
                }
                return fallback;
            }
            if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                throw new TrilensException("'" + name + "' must be a whole number, got " + abbreviate(v.toString()));
            }
            return v.intValue();
        }

        String string(String name, String fallback) {
            JsonNode v = body.get(name);
            if (v == null || v.isNull()) {
                if (fallback == null) {
                    throw new TrilensException("missing field '" + name + "': a string");
                }
                return fallback;
            }
            if (!v.isTextual()) {
                throw new TrilensException("'" + name + "' must be a string, got " + abbreviate(v.toString()));
            }
            return v.asText();
        }

        private String kind(JsonNode n) {
            return n.getNodeType().toString().toLowerCase(Locale.ROOT) + " " + abbreviate(n.toString());
        }
    }

    private static void json(Context ctx, Object value) throws JsonProcessingException {
        ctx.contentType("application/json").result(JSON.writeValueAsBytes(value));
    }

    /** Every refused request's reply: {"error": what was wrong and what was expected}. */
    record ErrorReply(String error) {
    }

    private static void error(Context ctx, HttpStatus status, String message) {
        try {
            ctx.status(status).contentType("application/json").result(JSON.writeValueAsBytes(new ErrorReply(message)));
        } catch (JsonProcessingException ex) {
            ctx.status(status).result("{\"error\":\"unprintable error\"}");
        }
    }

    private static String abbreviate(String s) {
        String t = s.replaceAll("\\p{Cntrl}", "?");
        return t.length() <= 40 ? t : t.substring(0, 40) + "...";
    }

    /** A refused request with its status (400 or 403) and a message for the client. */
    private static final class BadRequest extends RuntimeException {
        final HttpStatus status;

        BadRequest(HttpStatus status, String message) {
            super(message, null, false, false);
            this.status = status;
        }
    }
}
