package vn.diaban

import java.net.URI
import java.net.URLEncoder
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import kotlin.io.path.absolutePathString
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/**
 * A certificate authority made at test time (ECDSA P-256, with openssl) and a server
 * certificate it signed for `localhost` and 127.0.0.1; [pin] is the SHA-256 (hex) of the
 * server's public key.
 */
class TestCa(dir: Path) {
    val cert: Path = dir.resolve("server.crt")
    val key: Path = dir.resolve("server.key")
    val rootPem: String
    val pin: String
    val sslContext: javax.net.ssl.SSLContext

    private fun openssl(vararg args: String, input: ByteArray? = null): ByteArray {
        val p = ProcessBuilder(listOf("openssl") + args).redirectError(ProcessBuilder.Redirect.DISCARD).start()
        input?.let { p.outputStream.use { out -> out.write(it) } } ?: p.outputStream.close()
        val out = p.inputStream.readBytes()
        check(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) { "openssl ${args.toList()}" }
        return out
    }

    init {
        Files.createDirectories(dir)
        val (caCert, caKey) = dir.resolve("ca.crt") to dir.resolve("ca.key")
        val ec = arrayOf("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
        openssl("req", "-x509", *ec, "-keyout", "$caKey", "-out", "$caCert", "-days", "2", "-subj", "/CN=Dia ban test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        val csr = dir.resolve("server.csr")
        openssl("req", *ec, "-keyout", "$key", "-out", "$csr", "-subj", "/CN=localhost")
        val ext = dir.resolve("server.ext")
        Files.writeString(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", "$csr", "-CA", "$caCert", "-CAkey", "$caKey", "-CAcreateserial", "-out", "$cert",
            "-days", "2", "-extfile", "$ext")
        rootPem = Files.readString(caCert)
        val der = openssl("pkey", "-pubin", "-outform", "DER", input = openssl("x509", "-in", "$cert", "-pubkey", "-noout"))
        pin = java.security.MessageDigest.getInstance("SHA-256").digest(der).joinToString("") { "%02x".format(it) }
        val trust = java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType()).apply {
            load(null, null)
            val ca = java.security.cert.CertificateFactory.getInstance("X.509").generateCertificate(Files.newInputStream(caCert))
            setCertificateEntry("ca", ca)
        }
        val factory = javax.net.ssl.TrustManagerFactory.getInstance(javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm())
        factory.init(trust)
        sslContext = javax.net.ssl.SSLContext.getInstance("TLS").apply { init(null, factory.trustManagers, null) }
    }
}

/** A `diaban serve` process on a loopback port with its own SQLite file; on its own HTTPS with [tls]. */
class Server(dir: Path, val tls: TestCa? = null) : AutoCloseable {
    private val bin = System.getProperty("diaban.server") ?: error("set -Ddiaban.server to the diaban binary")
    private val db = dir.resolve("server.sqlite").absolutePathString()
    private var process: Process? = null
    var port = 0
        private set
    val url get() = if (tls != null) "https://localhost:$port" else "http://127.0.0.1:$port"

    fun admin(vararg args: String) {
        val p = ProcessBuilder(listOf(bin, "--db", db, "admin") + args).redirectErrorStream(true).start()
        val out = p.inputStream.readBytes().decodeToString()
        check(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) { "admin ${args.toList()}: $out" }
    }

    fun start(): Server {
        val https = tls?.let { listOf("--tls-cert", "${it.cert}", "--tls-key", "${it.key}") } ?: listOf()
        val p = ProcessBuilder(listOf(bin, "--db", db, "serve", "--listen", "127.0.0.1:$port") + https)
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start()
        val line = p.inputStream.bufferedReader().readLine() ?: ""
        val found = Regex("""listening on https?://127\.0\.0\.1:(\d+)""").find(line) ?: error("server did not start: $line")
        port = found.groupValues[1].toInt()
        process = p
        return this
    }

    fun stop() {
        process?.let {
            it.destroy() // SIGTERM: graceful shutdown
            it.waitFor(20, TimeUnit.SECONDS)
        }
        process = null
    }

    override fun close() = stop()
}

/** A province reviewer in the review web UI: form login, session cookie, CSRF. */
class Reviewer(private val server: Server, username: String, password: String) {
    private val http = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER)
        .apply { server.tls?.let { sslContext(it.sslContext) } }
        .build()
    private val cookie: String

    init {
        val login = post("/login", mapOf("username" to username, "password" to password), null)
        assertEquals(303, login.statusCode())
        cookie = login.headers().firstValue("set-cookie").orElseThrow().substringBefore(";")
    }

    fun review(recordId: String, action: String, comment: String) {
        val page = http.send(
            HttpRequest.newBuilder(URI.create("${server.url}/records/$recordId")).header("cookie", cookie).build(),
            HttpResponse.BodyHandlers.ofString(),
        )
        assertEquals(200, page.statusCode())
        val csrf = Regex("""name="csrf" value="([^"]+)"""").find(page.body())!!.groupValues[1]
        val answer = post("/records/$recordId/review", mapOf("csrf" to csrf, "action" to action, "comment" to comment), cookie)
        assertEquals(303, answer.statusCode(), answer.body())
    }

    private fun post(path: String, form: Map<String, String>, cookie: String?): HttpResponse<String> {
        val body = form.entries.joinToString("&") { (k, v) -> "$k=${URLEncoder.encode(v, Charsets.UTF_8)}" }
        val request = HttpRequest.newBuilder(URI.create(server.url + path))
            .header("content-type", "application/x-www-form-urlencoded")
            .apply { if (cookie != null) header("cookie", cookie) }
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .build()
        return http.send(request, HttpResponse.BodyHandlers.ofString())
    }
}

/** The host's key provider; a real app reads the key from the Android Keystore. */
class StaticKey(private val key: ByteArray) : KeyProvider {
    var calls = 0
    override fun storeKey(): ByteArray {
        calls += 1
        return key
    }
}

class Progress : SyncListener {
    val seen = CopyOnWriteArrayList<SyncProgress>()
    override fun onProgress(progress: SyncProgress) {
        seen.add(progress)
    }
}

class PhoneScenarioTest {
    @TempDir
    lateinit var dir: Path
    private lateinit var server: Server
    private val key = StaticKey(ByteArray(32) { it.toByte() })

    @BeforeEach
    fun startServer() {
        server = Server(dir, TestCa(dir.resolve("tls")))
        server.admin("create-unit", "--code", "14", "--name", "Tỉnh Sơn La", "--level", "province")
        server.admin("create-unit", "--code", "03694", "--name", "Xã Mường Giôn", "--level", "commune", "--parent", "14")
        for ((user, name) in listOf("canbo.muonggion" to "Lò Văn Cơ Sở", "canbo2.muonggion" to "Quàng Văn Hai")) {
            server.admin("create-user", "--username", user, "--password", "canbo-mat-khau", "--role", "field_officer", "--unit", "03694", "--name", name)
        }
        server.admin("create-user", "--username", "kiemduyet.sonla", "--password", "kiemduyet-mat-khau", "--role", "reviewer", "--unit", "14", "--name", "Hoàng Thị Thẩm Định")
        server.start()
    }

    @AfterEach
    fun stopServer() = server.close()

    /** A phone over the server's own HTTPS, trusting the province's test authority. */
    private fun phone(name: String): Device =
        Device.open(Files.createDirectories(dir.resolve(name)).resolve("store.sqlite").absolutePathString(), key, server.url, name)
            .also { it.setTls(listOf(), server.tls?.rootPem) }

    @Test
    fun `the app lock needs the host key and the pin`() {
        val path = Files.createDirectories(dir.resolve("locked")).resolve("store.sqlite").absolutePathString()
        val phone = Device.open(path, key, server.url, "locked").also { it.setTls(listOf(), server.tls?.rootPem) }
        phone.login("canbo.muonggion", "canbo-mat-khau")
        val record = phone.createRecord("propaganda_session", null)
        phone.setPin("2468")
        phone.closeStore()
        assertFailsWith<DiabanException.Locked> { Device.open(path, key, server.url, "locked") }
        val wrong = assertFailsWith<DiabanException.WrongPin> { Device.openWithPin(path, key, "0000", server.url, "locked") }
        assertEquals(9u, wrong.attemptsLeft)
        val again = Device.openWithPin(path, key, "2468", server.url, "locked")
        assertEquals("draft", again.record(record).state)
        again.changePin("2468", "97531")
        again.lock()
        assertTrue(again.isLocked())
        assertFailsWith<DiabanException.Locked> { again.record(record) }
        again.unlock("97531")
        assertEquals("draft", again.record(record).state)
        again.closeStore()
    }

    @Test
    fun `the phone talks only to the right server and only over https`() {
        val tls = server.tls!!
        val store = { name: String -> Files.createDirectories(dir.resolve(name)).resolve("store.sqlite").absolutePathString() }
        val stranger = Device.open(store("stranger"), key, server.url, "stranger")
        stranger.setTls(listOf(), TestCa(dir.resolve("other")).rootPem)
        val untrusted = assertFailsWith<DiabanException.Certificate> { stranger.login("canbo.muonggion", "canbo-mat-khau") }
        assertEquals("unknown_issuer", untrusted.problem)
        val pinned = Device.open(store("pinned"), key, server.url, "pinned")
        pinned.setTls(listOf("ab".repeat(32)), tls.rootPem)
        val mismatch = assertFailsWith<DiabanException.Certificate> { pinned.login("canbo.muonggion", "canbo-mat-khau") }
        assertEquals("pin_mismatch", mismatch.problem)
        pinned.setTls(listOf(tls.pin), tls.rootPem)
        assertEquals("03694", pinned.login("canbo.muonggion", "canbo-mat-khau").unitCode)
        assertFailsWith<DiabanException.Insecure> { Device.open(store("plain"), key, "http://diaban.sonla.gov.vn", "plain") }
        stranger.closeStore()
        pinned.closeStore()
    }

    private fun Device.display(record: String, field: String): String =
        record(record).items.first { it.name == field }.display

    @Test
    fun `a day on the phone`() {
        val a = phone("Điện thoại A")
        val b = phone("Điện thoại B")
        assertTrue(key.calls >= 2, "the key comes from the host's provider")
        val account = a.login("canbo.muonggion", "canbo-mat-khau")
        assertEquals(listOf("03694", "Xã Mường Giôn"), listOf(account.unitCode, account.unitName))
        assertEquals(listOf("03694"), a.units().map { it.code }, "the unit subtree came with the first sync")
        b.login("canbo2.muonggion", "canbo-mat-khau")

        // Offline: the record is made and kept; the sync fails with a sentence the officer reads.
        server.stop()
        val record = a.createRecord("propaganda_session", null)
        // Three days ago by the device's clock (pinned when the test command sets DIABAN_CLOCK).
        val sessionDay = java.time.LocalDate.parse(a.today()).minusDays(3).toString()
        a.setField(record, "session_date", FieldValue.Date(sessionDay))
        a.setField(record, "place", FieldValue.Text("Bến xe khách Mường Giôn"))
        a.setField(record, "audience_group", FieldValue.Choice("youth"))
        a.setField(record, "participants", FieldValue.Integer(57))
        val offline = assertFailsWith<DiabanException.Unreachable> { runBlocking { a.syncAsync() } }
        assertTrue(offline.reason.contains("Dữ liệu vẫn được lưu trên máy"), offline.reason)
        assertTrue(a.record(record).unsent)

        // Back in coverage: one suspend call syncs it, reporting progress.
        server.start()
        val progress = Progress()
        val report = runBlocking { a.syncAsync(progress, SyncCancel()) }
        assertEquals(listOf(record), report.accepted)
        assertEquals(SyncPhase.DONE, progress.seen.last().phase)
        assertEquals(report.roundTrips, progress.seen.last().roundTrips)
        assertEquals(false, a.record(record).unsent)

        // Both phones change the place while apart; A sees both values and keeps B's.
        b.sync()
        a.setField(record, "place", FieldValue.Text("Bến xe khách"))
        b.setField(record, "place", FieldValue.Text("Trạm y tế xã"))
        a.sync()
        b.sync()
        a.sync()
        val conflict = a.conflicts(record).single()
        assertEquals("place", conflict.path)
        val by = conflict.values.map { it.by }
        assertEquals(listOf("canbo.muonggion", "canbo2.muonggion"), by.sortedBy { it })
        a.resolveConflict(record, "place", by.indexOf("canbo2.muonggion").toUInt())
        a.sync()
        b.sync()
        for (p in listOf(a, b)) {
            assertEquals(emptyList(), p.conflicts(record))
            assertEquals("Trạm y tế xã", p.display(record, "place"))
        }

        // Submitted, returned by the province with a comment, fixed and submitted again.
        a.submit(record)
        a.sync()
        Reviewer(server, "kiemduyet.sonla", "kiemduyet-mat-khau").review(record, "return", "Số người tham dự chưa khớp biên bản.")
        a.sync()
        val returned = a.record(record)
        assertEquals("returned", returned.state)
        assertEquals("Số người tham dự chưa khớp biên bản.", returned.reviewComment)
        a.setField(record, "participants", FieldValue.Integer(60))
        a.submit(record)
        assertEquals(listOf(record), a.sync().accepted)
        assertNull(a.record(record).reviewComment)
        b.sync()
        assertEquals("submitted", b.record(record).state, "the server holds the resubmission")
        assertEquals("60", b.display(record, "participants"))

        // Found by what was written in it, with or without diacritics; errors in Vietnamese.
        assertEquals(listOf(record), a.search("tram y te", null).map { it.id })
        val locked = assertFailsWith<DiabanException.NotEditable> { a.setField(record, "place", FieldValue.Text("x")) }
        assertEquals("Hồ sơ đang ở trạng thái đã gửi nên không sửa được.", locked.reason)

        // A cancelled sync stops with a typed error; nothing is lost and the next one works.
        val stop = SyncCancel()
        stop.cancel()
        assertFailsWith<DiabanException.Cancelled> { runBlocking { a.syncAsync(null, stop) } }
        assertEquals(emptyList(), a.quarantined())
        a.closeStore()
        b.closeStore()
    }
}
