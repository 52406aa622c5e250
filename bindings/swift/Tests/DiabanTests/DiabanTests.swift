// Runs on a Mac after build-xcframework.sh; never run on the Linux CI (no Swift toolchain).
import Foundation
import XCTest

@testable import Diaban

final class StaticKey: KeyProvider {
    func storeKey() throws -> Data { Data((0..<32).map { UInt8($0) }) }
}

final class DiabanTests: XCTestCase {
    func testAStoreOpensOfflineAndNeedsASignInBeforeRecords() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString + ".sqlite").path
        let device = try Device.open(path: path, keys: StaticKey(), serverUrl: "http://127.0.0.1:9", deviceName: "iPhone")
        XCTAssertEqual(try device.records(templateId: nil, state: nil).count, 0)
        XCTAssertThrowsError(try device.createRecord(templateId: "propaganda_session", period: nil)) { error in
            guard case DiabanError.NotLoggedIn = error else { return XCTFail("\(error)") }
        }
        device.closeStore()
    }

    func testSyncIsAnAsyncFunctionThatReportsUnreachableServersInVietnamese() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString + ".sqlite").path
        let device = try Device.open(path: path, keys: StaticKey(), serverUrl: "http://127.0.0.1:9", deviceName: "iPhone")
        do {
            _ = try await device.syncAsync(listener: nil, cancel: nil)
            XCTFail("no server listens on port 9")
        } catch DiabanError.NotLoggedIn(let reason) {
            XCTAssertTrue(reason.contains("đăng nhập"))
        }
        device.closeStore()
    }
}
