/**
 * @module
 * `AlarmTopic`: an SNS topic CloudWatch alarms can notify, encrypted with its own rotating key and
 * reachable over TLS only (cdk-nag AwsSolutions-SNS2, -SNS3, -KMS5), with optional email
 * subscribers. Pass `new SnsAction(topic.topic)` in `CeleryRelay`'s `alarmActions`.
 */
import { ArnFormat, Stack } from "aws-cdk-lib";
import { PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Key, type IKey } from "aws-cdk-lib/aws-kms";
import { Topic, type ITopic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { ConfigurationError } from "../sdk/errors.js";

export interface AlarmTopicProps {
  /**
   * Addresses subscribed to the topic; each must confirm the subscription from the email AWS sends.
   * @default - no subscribers
   */
  readonly emails?: readonly string[];
}

/** Something with one `@` and no spaces: SNS checks the rest when it sends the confirmation. */
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export class AlarmTopic extends Construct {
  /** The topic the alarms publish to. */
  public readonly topic: ITopic;
  /** The topic's encryption key. */
  public readonly key: IKey;

  constructor(scope: Construct, id: string, props: AlarmTopicProps = {}) {
    super(scope, id);
    const emails = props.emails ?? [];
    for (const email of emails) {
      if (!EMAIL.test(email)) {
        throw new ConfigurationError(`AlarmTopic: emails must be email addresses, got ${JSON.stringify(email)}`, { code: "ERR_INVALID_OPTION" });
      }
    }
    const stack = Stack.of(this);
    const alarmsOfThisAccount = {
      ArnLike: { "aws:SourceArn": stack.formatArn({ service: "cloudwatch", resource: "alarm", resourceName: "*", arnFormat: ArnFormat.COLON_RESOURCE_NAME }) },
    };
    const key = new Key(this, "Key", { description: "celery-edge alarm notifications", enableKeyRotation: true });
    // CloudWatch publishes as its service principal; on an encrypted topic SNS then uses the key on
    // its behalf, which the default key policy (account principals only) would refuse.
    key.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
      }),
    );
    const topic = new Topic(this, "Topic", { displayName: "celery-edge alarms", masterKey: key, enforceSSL: true });
    // The topic policy enforceSSL writes replaces SNS's default one, so CloudWatch is named here,
    // for this account's alarms only.
    topic.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["sns:Publish"],
        resources: [topic.topicArn],
        conditions: alarmsOfThisAccount,
      }),
    );
    for (const email of emails) topic.addSubscription(new EmailSubscription(email));
    this.topic = topic;
    this.key = key;
  }
}
