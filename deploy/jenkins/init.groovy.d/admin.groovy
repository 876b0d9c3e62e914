// The admin user go_example-rs signs in as (JENKINS_ADMIN_USER / JENKINS_ADMIN_PASSWORD), full
// control for logged-in users, anonymous read off, CSRF protection on (the default crumb
// issuer), and the go-test job the original's GET /jenkins/index shows.
import jenkins.model.Jenkins
import hudson.security.HudsonPrivateSecurityRealm
import hudson.security.FullControlOnceLoggedInAuthorizationStrategy

def jenkins = Jenkins.get()
def user = System.getenv("JENKINS_ADMIN_USER") ?: "admin"
def password = System.getenv("JENKINS_ADMIN_PASSWORD") ?: "admin"
def realm = new HudsonPrivateSecurityRealm(false)
realm.createAccount(user, password)
jenkins.setSecurityRealm(realm)
def strategy = new FullControlOnceLoggedInAuthorizationStrategy()
strategy.setAllowAnonymousRead(false)
jenkins.setAuthorizationStrategy(strategy)
if (jenkins.getItem("go-test") == null) {
  def xml = '''<?xml version='1.1' encoding='UTF-8'?>
<project>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>params1</name>
          <defaultValue>defaultVal</defaultValue>
        </hudson.model.StringParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <builders>
    <hudson.tasks.Shell><command>echo hello go_example</command></hudson.tasks.Shell>
  </builders>
</project>'''
  jenkins.createProjectFromXML("go-test", new ByteArrayInputStream(xml.getBytes("UTF-8")))
}
jenkins.save()
