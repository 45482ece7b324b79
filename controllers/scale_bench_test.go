package controllers

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/internal/testenv"
)

const manyIngesters = 500

// BenchmarkManyIngesters creates 500 Ingesters in the envtest API server and measures how
// long the manager takes to bring all of them to Ready, with the real
// kube-controller-manager rolling out the Deployments and testenv's kubelet reporting
// their pods ready (without running them). It reports Ingesters and reconciles per second
// and the manager's heap. It fails if any Ingester does not become Ready, but sets no
// time limit.
func BenchmarkManyIngesters(b *testing.B) {
	ctx := context.Background()
	testenv.StartControllerManager(b, testEnv)
	for b.Loop() {
		ns := newNamespaceB(b)
		testenv.StartKubelet(b, k8sClient, ns, nil)
		var heapBefore runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&heapBefore)
		reconcilesBefore := reconcileCount(b)
		start := time.Now()

		for i := range manyIngesters {
			ing := minimalIngester(ns, fmt.Sprintf("ing-%03d", i))
			if err := k8sClient.Create(ctx, ing); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Minute)
		for ready := 0; ready < manyIngesters; {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d Ingesters Ready after 10 minutes", ready, manyIngesters)
			}
			time.Sleep(200 * time.Millisecond)
			var list spanflowv1alpha1.IngesterList
			if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
				b.Fatal(err)
			}
			ready = 0
			for i := range list.Items {
				if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, spanflowv1alpha1.ConditionReady) {
					ready++
				}
			}
		}
		elapsed := time.Since(start)

		var heapAfter runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&heapAfter)
		b.ReportMetric(float64(manyIngesters)/elapsed.Seconds(), "ingesters-ready/s")
		b.ReportMetric((reconcileCount(b)-reconcilesBefore)/elapsed.Seconds(), "reconciles/s")
		b.ReportMetric(float64(heapAfter.HeapInuse)/(1<<20), "heap-in-use-MB")
		b.ReportMetric((float64(heapAfter.HeapInuse)-float64(heapBefore.HeapInuse))/manyIngesters/1024, "heap-KB/ingester")

		// Delete the Ingesters so that they stop being resynced.
		if err := k8sClient.DeleteAllOf(ctx, &spanflowv1alpha1.Ingester{}, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
	}
}

func reconcileCount(b *testing.B) float64 {
	return counterSum(b, "controller_runtime_reconcile_total", "controller", "ingester")
}
