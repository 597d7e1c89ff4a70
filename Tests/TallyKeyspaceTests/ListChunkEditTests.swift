// ListChunkEditTests: popping from a listpack chunk edits its buffer in place.
@testable import TallyKeyspace
import Testing

@Suite struct ListChunkEditTests {
    /// An element handed to the pop's body views the chunk's buffer; if that view outlived the
    /// edit, the buffer was shared at the edit and copied whole (RPOP on a full chunk spent most
    /// of its time copying it). The buffer's address must stay put across pops from either end.
    @Test func popsFromEitherEndKeepTheBuffer() {
        var chunk = ListChunk()
        for index in 0..<200 {
            let element = Array("element-\(index)".utf8)
            chunk.append(element, size: ListpackEntry.encodedSize(element))
        }
        let address = chunk.bytes.withUnsafeBufferPointer { $0.baseAddress }
        var popped: [[UInt8]] = []
        for index in 0..<100 {
            chunk.removeEnd(index % 2 == 0 ? .tail : .head) { popped.append($0.materialized) }
            #expect(chunk.bytes.withUnsafeBufferPointer { $0.baseAddress } == address)
        }
        #expect(chunk.count == 100)
        #expect(popped.first == Array("element-199".utf8))
        #expect(popped[1] == Array("element-0".utf8))
    }
}
