import Testing
@testable import SlipwayConsole

@Test func operatorOutranksViewer() {
    #expect(ConsoleRole.viewer < .operator)
    #expect(!(ConsoleRole.operator < .viewer))
}
