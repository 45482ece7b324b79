package controllers

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/config"
)

// PodPolicy is what an Ingester's pod template may ask for beyond the restricted Pod
// Security profile. Creating an Ingester must not give anyone pods they could not create
// themselves: what the policy does not allow is refused on the Ingester's status.
type PodPolicy struct {
	// AllowPrivileged lets templates ask for privileged containers, privilege escalation,
	// added capabilities, root, unconfined seccomp or AppArmor profiles, SELinux types
	// beyond the container ones, and sysctls.
	AllowPrivileged bool
	// AllowServiceAccount lets templates run the pods as another ServiceAccount of their
	// namespace, with whatever API rights it has.
	AllowServiceAccount bool
}

// specProblem is why an Ingester's spec is not applied: a condition reason and what is
// wrong, naming the fields.
type specProblem struct {
	reason string
	err    error
	// unmanagedPods is true when pods the operator does not manage may run for the
	// Ingester meanwhile: a Deployment an earlier Ingester of the name left.
	unmanagedPods bool
}

// checkSpec returns what keeps the spec from running, or nil. The API server refuses most
// mistakes itself; what reaches here was stored before the schema refused it, depends on
// the operator's policy or on the Ingester's history (the consumer group in use), or is
// known only to the ingester's own validation of the config the operator renders.
func checkSpec(ing *spanflowv1alpha1.Ingester, policy PodPolicy) *specProblem {
	if err := malformedDurations(ing); err != nil {
		return &specProblem{reason: spanflowv1alpha1.ReasonInvalidSpec, err: err}
	}
	if inUse := ing.Status.ConsumerGroup; inUse != "" && inUse != consumerGroup(ing) {
		return &specProblem{reason: spanflowv1alpha1.ReasonConsumerGroupChanged, err: fmt.Errorf(
			"spec.kafka.consumerGroup: the spec names %q but the pods consume as %q, and a group cannot change (the new one would re-read or skip the topic): put it back, or create another Ingester for the new group",
			consumerGroup(ing), inUse)}
	}
	if err := policy.check(&ing.Spec.Template); err != nil {
		return &specProblem{reason: spanflowv1alpha1.ReasonNotAllowed, err: err}
	}
	if err := ingesterConfig(ing).Validate(); err != nil {
		return &specProblem{reason: spanflowv1alpha1.ReasonInvalidSpec, err: inSpecTerms(err)}
	}
	if err := headerReferences(ing); err != nil {
		return &specProblem{reason: spanflowv1alpha1.ReasonInvalidSpec, err: err}
	}
	return nil
}

// headerReferences checks the ${env:NAME} references of the literal OTLP header values:
// the pods replace them with their environment variables and refuse to start on one they
// do not have (or one not closed), so each must name a variable of spec.template.env.
func headerReferences(ing *spanflowv1alpha1.Ingester) error {
	o := otlpSpec(ing)
	if o == nil {
		return nil
	}
	env := map[string]bool{}
	for _, e := range ing.Spec.Template.Env {
		env[e.Name] = true
	}
	lookup := func(name string) (string, bool) { return "", env[name] }
	var errs []error
	for i, h := range o.Headers {
		if h.ValueFrom != nil {
			continue
		}
		if _, err := config.ExpandEnv(h.Value, lookup); err != nil {
			errs = append(errs, fmt.Errorf("spec.storage.otlp.headers[%d].value: %w: ${env:NAME} must name a variable of spec.template.env ($$ writes a $)", i, err))
		}
	}
	return errors.Join(errs...)
}

// parsed is a duration field of the API.
type parsed interface {
	Parse() (time.Duration, error)
}

// checkDuration adds to errs what is wrong with the duration at path, if it is set.
func checkDuration[T parsed](errs *[]error, path string, d *T) {
	if d == nil {
		return
	}
	if _, err := (*d).Parse(); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
	}
}

// malformedDurations names every duration of the spec that is not one. The API server
// refuses them, but an object stored before it did must be reported, not decoded into
// defaults.
func malformedDurations(ing *spanflowv1alpha1.Ingester) error {
	var errs []error
	k := &ing.Spec.Kafka
	checkDuration(&errs, "spec.kafka.sessionTimeout", k.SessionTimeout)
	checkDuration(&errs, "spec.kafka.heartbeatInterval", k.HeartbeatInterval)
	checkDuration(&errs, "spec.kafka.rebalanceTimeout", k.RebalanceTimeout)
	checkDuration(&errs, "spec.kafka.drainTimeout", k.DrainTimeout)
	checkDuration(&errs, "spec.kafka.maxWait", k.MaxWait)
	checkDuration(&errs, "spec.kafka.commitInterval", k.CommitInterval)
	if o := ing.Spec.Storage.OTLP; o != nil {
		checkDuration(&errs, "spec.storage.otlp.timeout", o.Timeout)
	}
	p := &ing.Spec.Processing
	checkDuration(&errs, "spec.processing.batchLinger", p.BatchLinger)
	if r := p.Retry; r != nil {
		checkDuration(&errs, "spec.processing.retry.min", r.Min)
		checkDuration(&errs, "spec.processing.retry.max", r.Max)
	}
	if a := ing.Spec.Autoscaling; a != nil {
		checkDuration(&errs, "spec.autoscaling.cooldown", a.Cooldown)
		for name, rules := range map[string]*spanflowv1alpha1.ScalingRules{"scaleUp": a.ScaleUp, "scaleDown": a.ScaleDown} {
			if rules != nil {
				checkDuration(&errs, "spec.autoscaling."+name+".stabilizationWindow", rules.StabilizationWindow)
				checkDuration(&errs, "spec.autoscaling."+name+".period", rules.Period)
			}
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// configFieldsInSpec maps the ingester config's field paths that the Ingester spells
// differently to the spec's.
var configFieldsInSpec = map[string]string{
	"drainTimeout":                    "kafka.drainTimeout",
	"kafka.maxBytes":                  "kafka.maxFetchBytes",
	"storage.file.maxFileBytes":       "storage.file.maxFileSize",
	"storage.otlp.caFile":             "storage.otlp.tls.ca",
	"storage.otlp.certFile":           "storage.otlp.tls.clientCertSecretName",
	"kafka.tls.caFile":                "kafka.tls.ca",
	"kafka.tls.certFile":              "kafka.tls.clientCertSecretName",
	"storage.otlp.insecureSkipVerify": "storage.otlp.tls.insecureSkipVerify",
}

// inSpecTerms rewrites the ingester config's validation errors ("field: problem") to
// name the Ingester's fields.
func inSpecTerms(err error) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return fmt.Errorf("the rendered ingester configuration is invalid: %w", err)
	}
	var errs []error
	for _, e := range joined.Unwrap() {
		field, problem, found := strings.Cut(e.Error(), ": ")
		if !found {
			errs = append(errs, e)
			continue
		}
		if renamed, ok := configFieldsInSpec[field]; ok {
			field = renamed
		}
		errs = append(errs, fmt.Errorf("spec.%s: %s", field, problem))
	}
	return errors.Join(errs...)
}

// check names every field of the template that the policy does not allow.
func (p PodPolicy) check(t *spanflowv1alpha1.PodTemplate) error {
	var errs []error
	refuse := func(path, what, flag string) {
		errs = append(errs, fmt.Errorf("spec.template.%s: %s is not allowed by this operator (started without %s)", path, what, flag))
	}
	if t.ServiceAccountName != "" && !p.AllowServiceAccount {
		refuse("serviceAccountName", "another ServiceAccount, with its API rights,", "--allow-service-account")
	}
	if p.AllowPrivileged {
		return errors.Join(errs...)
	}
	privileged := func(path, what string) { refuse(path, what, "--allow-privileged-pods") }
	if c := t.SecurityContext; c != nil {
		if ptr.Deref(c.Privileged, false) {
			privileged("securityContext.privileged", "a privileged container")
		}
		if ptr.Deref(c.AllowPrivilegeEscalation, false) {
			privileged("securityContext.allowPrivilegeEscalation", "privilege escalation")
		}
		if c.Capabilities != nil && len(c.Capabilities.Add) > 0 {
			privileged("securityContext.capabilities.add", "adding capabilities")
		}
		if c.ProcMount != nil && *c.ProcMount == corev1.UnmaskedProcMount {
			privileged("securityContext.procMount", "an unmasked /proc")
		}
		checkIdentity(privileged, "securityContext.", c.RunAsUser, c.RunAsNonRoot, c.SeccompProfile, c.AppArmorProfile, c.SELinuxOptions, c.WindowsOptions)
	}
	if c := t.PodSecurityContext; c != nil {
		if len(c.Sysctls) > 0 {
			privileged("podSecurityContext.sysctls", "setting sysctls")
		}
		checkIdentity(privileged, "podSecurityContext.", c.RunAsUser, c.RunAsNonRoot, c.SeccompProfile, c.AppArmorProfile, c.SELinuxOptions, c.WindowsOptions)
	}
	return errors.Join(errs...)
}

// checkIdentity refuses, in a pod's or a container's security context, running as root
// and leaving the kernel's confinement.
func checkIdentity(privileged func(path, what string), prefix string, runAsUser *int64, runAsNonRoot *bool,
	seccomp *corev1.SeccompProfile, apparmor *corev1.AppArmorProfile, selinux *corev1.SELinuxOptions, windows *corev1.WindowsSecurityContextOptions) {
	if runAsUser != nil && *runAsUser == 0 {
		privileged(prefix+"runAsUser", "running as root (user 0)")
	}
	if runAsNonRoot != nil && !*runAsNonRoot {
		privileged(prefix+"runAsNonRoot", "allowing root (runAsNonRoot: false)")
	}
	if seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeUnconfined {
		privileged(prefix+"seccompProfile", "an unconfined seccomp profile")
	}
	if apparmor != nil && apparmor.Type == corev1.AppArmorProfileTypeUnconfined {
		privileged(prefix+"appArmorProfile", "an unconfined AppArmor profile")
	}
	if selinux != nil && (selinux.User != "" || selinux.Role != "" ||
		!slices.Contains([]string{"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}, selinux.Type)) {
		privileged(prefix+"seLinuxOptions", "an SELinux user, role or type beyond the container types")
	}
	if windows != nil && ptr.Deref(windows.HostProcess, false) {
		privileged(prefix+"windowsOptions.hostProcess", "a Windows host process")
	}
}
