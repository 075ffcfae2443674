@testable import SlipwayWire
import Testing

@Suite("Delivery ledger: what a connection holds")
struct DeliveryLedgerTests {
    let peer = DeliveryLedger.Identity(localPort: 7845, peer: "127.0.0.1:50000")

    @Test("a connection the owner takes in late is not forgiven the message it streamed meanwhile")
    func lateOwnerForgivesNothingUndelivered() {
        let ledger = DeliveryLedger(curve: false)
        let streamed: UInt64 = 1 << 30
        ledger.accepted(7, peer, arrived: streamed, recentlyDelivered: ledger.takingEvents())
        #expect(ledger.held(7, arrived: streamed) == streamed)
    }

    @Test("what other connections delivered meanwhile forgives nothing on the new one")
    func othersTrafficForgivesNothing() {
        let ledger = DeliveryLedger(curve: false)
        _ = ledger.takingEvents()
        for _ in 0..<64 { ledger.delivered(1 << 20, from: 9) }  // a busy, honest peer on descriptor 9
        let streamed: UInt64 = 256 << 20
        ledger.accepted(7, peer, arrived: streamed, recentlyDelivered: ledger.takingEvents())
        #expect(ledger.held(7, arrived: streamed) == streamed)
    }

    @Test("frames the owner read before it saw the connection count as delivered, even after the descriptor's last user was forgotten")
    func readBeforeAcceptedIsDelivered() {
        let ledger = DeliveryLedger(curve: false)
        _ = ledger.takingEvents()
        let piece = 4 << 20
        ledger.delivered(piece, from: 7)  // the new connection's frame, read before its event
        let recent = ledger.takingEvents()
        let delivered = UInt64(piece + 9)
        #expect(recent == [7: delivered])
        ledger.forget(7)  // the descriptor's previous connection closed: its event came first
        ledger.accepted(7, peer, arrived: delivered, recentlyDelivered: recent)
        #expect(ledger.held(7, arrived: delivered) == 0)
        // What arrives later and is not delivered is held.
        #expect(ledger.held(7, arrived: delivered + 1_000) == 1_000)
    }
}
