package dev.trilens.serve;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * HTTP/1.1 over a plain socket to a loopback port, so tests can send what java.net.http refuses to: any Host header,
 * none at all, a chunked body of any size.
 */
final class RawHttp {
    record Response(int status, Map<String, String> headers, String body) {
        String header(String name) {
            return headers.get(name.toLowerCase(Locale.ROOT));
        }
    }

    private final int port;

    RawHttp(int port) {
        this.port = port;
    }

    String host() {
        return "127.0.0.1:" + port;
    }

    Response get(String path) {
        return send("GET", path, Map.of("Host", host()), null, false);
    }

    Response postJson(String path, String json) {
        return send("POST", path, Map.of("Host", host(), "Content-Type", "application/json"),
                json.getBytes(StandardCharsets.UTF_8), false);
    }

    /** headers as given (no Host added); chunked sends the body in one chunk without a Content-Length. */
    Response send(String method, String path, Map<String, String> headers, byte[] body, boolean chunked) {
        return send(method + " " + path + " HTTP/1.1", headers, body, chunked);
    }

    Response send(String requestLine, Map<String, String> headers, byte[] body, boolean chunked) {
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), port)) {
            s.setSoTimeout(30_000);
            StringBuilder head = new StringBuilder(requestLine).append("\r\n");
            headers.forEach((k, v) -> head.append(k).append(": ").append(v).append("\r\n"));
            head.append("Connection: close\r\n");
            if (body != null) {
                head.append(chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: " + body.length + "\r\n");
            }
            head.append("\r\n");
            OutputStream out = s.getOutputStream();
            out.write(head.toString().getBytes(StandardCharsets.ISO_8859_1));
            if (body != null) {
                if (chunked) {
                    out.write((Integer.toHexString(body.length) + "\r\n").getBytes(StandardCharsets.ISO_8859_1));
                    out.write(body);
                    out.write("\r\n0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
                } else {
                    out.write(body);
                }
            }
            out.flush();
            return parse(s.getInputStream());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Response parse(InputStream in) throws IOException {
        byte[] all = in.readAllBytes();
        String text = new String(all, StandardCharsets.ISO_8859_1);
        int end = text.indexOf("\r\n\r\n");
        String[] lines = text.substring(0, end).split("\r\n");
        int status = Integer.parseInt(lines[0].split(" ")[1]);
        Map<String, String> headers = new LinkedHashMap<>();
        for (int i = 1; i < lines.length; i++) {
            int c = lines[i].indexOf(':');
            headers.put(lines[i].substring(0, c).trim().toLowerCase(Locale.ROOT), lines[i].substring(c + 1).trim());
        }
        byte[] body = java.util.Arrays.copyOfRange(all, end + 4, all.length);
        if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
            body = unchunk(body);
        }
        return new Response(status, headers, new String(body, StandardCharsets.UTF_8));
    }

    private static byte[] unchunk(byte[] b) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int i = 0;
        while (true) {
            int lineEnd = i;
            while (b[lineEnd] != '\r') {
                lineEnd++;
            }
            String sizeText = new String(b, i, lineEnd - i, StandardCharsets.ISO_8859_1).split(";")[0].trim();
            int size = Integer.parseInt(sizeText, 16);
            if (size == 0) {
                return out.toByteArray();
            }
            out.write(b, lineEnd + 2, size);
            i = lineEnd + 2 + size + 2;
        }
    }
}
