import SwarmAPI
import SwarmConstraints
import SwarmPluginABI
@testable import SwarmPluginHost
@testable import SwarmScheduler
import SwiftProtobuf
import Testing

/// The C views the host hands to plugins carry what the ABI promises, kept up to date as
/// tasks are placed.
@Suite struct PluginViewTests {
    @Test func nodeAndTaskViewsCarryGenericResources() throws {
        var node = PlacementTests.node("n1")
        node.description_p.resources.generic = try GenericResources.parse("fpga=3,ssd=disk-a,ssd=disk-b")
        var engine = PlacementEngine()
        engine.setNode(node)
        var spec = SwarmTaskSpec()
        spec.resources.reservations.generic = try GenericResources.parse("fpga=2")
        let req = try TaskRequirements(serviceID: "svc", spec: spec)
        let view = CNodeView(try #require(engine.nodes["n1"]))

        func freeUnits() -> [String: Int64] {
            view.withPointer { n in
                let v = n.pointee
                var free: [String: Int64] = [:]
                for i in 0..<v.generic_free_count {
                    let r = v.generic_free[i]
                    let kind = String(decoding: UnsafeRawBufferPointer(start: r.kind.data, count: r.kind.len), as: UTF8.self)
                    #expect(r.named.len == 0)
                    free[kind] = r.value
                }
                #expect(v.generic_free_count == free.count)
                return free
            }
        }
        view.update(try #require(engine.nodes["n1"]), serviceID: "svc")
        #expect(freeUnits() == ["fpga": 3, "ssd": 2])

        // After a placement, the same view shows what is left.
        let task = SwarmTask.with { $0.id = "t1"; $0.serviceID = "svc"; $0.spec = spec }
        let placed = engine.place([task], requirements: req, scorer: try PlacementTests.spread())
        #expect(placed.assignments.count == 1)
        view.update(try #require(engine.nodes["n1"]), serviceID: "svc")
        #expect(freeUnits() == ["fpga": 1, "ssd": 2])

        var taskView = CTaskView()
        taskView.update(req)
        let asked = taskView.withPointer { t in
            (0..<t.pointee.generic_count).map { i in
                let r = t.pointee.generic[i]
                return (String(decoding: UnsafeRawBufferPointer(start: r.kind.data, count: r.kind.len), as: UTF8.self), r.value)
            }
        }
        #expect(asked.count == 1 && asked.first?.0 == "fpga" && asked.first?.1 == 2)
    }
}
